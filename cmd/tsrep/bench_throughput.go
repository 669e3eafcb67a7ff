package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/bench/throughput"
	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/pipeline"
)

func init() {
	benchSubcommands = append(benchSubcommands, newBenchThroughputCmd, newBenchConsumeCmd)
}

func newBenchThroughputCmd() *cobra.Command {
	o := throughput.Options{}
	var asJSON bool
	var influxURL string
	cmd := &cobra.Command{
		Use:   "throughput",
		Short: "End-to-end speed: a bare consumer (a) vs tsrep with learning off (b), in full (c), and in full with kafka.repartition on (d), on one preloaded topic",
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o.Bin = bin
			o.InfluxURL = influxURL
			if o.InfluxURL == "" { // as on every command: influx.url of the configuration
				c := config.Default()
				if o.Config != "" {
					if c, err = config.Load(o.Config); err != nil {
						return err
					}
				}
				o.InfluxURL = c.Influx.URL
			}
			if o.Dir == "" {
				if o.Dir, err = os.MkdirTemp("", "tsrep-bench-"); err != nil {
					return err
				}
				defer os.RemoveAll(o.Dir)
			}
			o.Log = newLogger(config.Log{Level: "info", Format: "text"})
			res, err := throughput.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(os.Stdout)
				e.SetIndent("", "  ")
				return e.Encode(res)
			}
			printThroughput(res)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Points, "points", 5_000_000, "points to preload (one per message)")
	f.IntVar(&o.Series, "series", 1000, "series they are spread over")
	f.IntVar(&o.Partitions, "partitions", 4, "partitions of the topic")
	f.StringVar(&o.Data, "data", "", "CSV whose columns are tiled over the series (e.g. data/ETT/ETTh1.csv); default: generated sinusoids with noise")
	f.IntVar(&o.Length, "length", 64, "window length")
	f.IntVar(&o.Stride, "stride", 8, "window stride")
	f.StringVar(&o.Model, "model", "ssl", "learner of (c) (model.kind)")
	f.IntVar(&o.Dim, "dim", 32, "embedding size of (c)")
	f.StringVar(&o.Config, "config", "", "configuration (b) and (c) start from (default: the defaults of config.toml); the flags above override it")
	f.StringVar(&influxURL, "influx-url", "", "InfluxDB that (b) and (c) write to (default: influx.url of --config, else http://127.0.0.1:8086)")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write (c)'s CPU profile here (and print the stage profile)")
	f.StringVar(&o.HeapProfile, "memprofile", "", "write (c)'s heap profile here at the end")
	f.StringVar(&o.Dir, "dir", "", "work directory (default: a temporary one)")
	pid, _ := strconv.Atoi(os.Getenv("TSREP_INFLUXD_PID"))
	f.IntVar(&o.InfluxdPID, "influxd-pid", pid, "process id of a local InfluxDB server whose CPU time each phase reports (default $TSREP_INFLUXD_PID, which scripts/with-influxd.sh sets)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object with every figure")
	return cmd
}

func printThroughput(r *throughput.Result) {
	o := r.Options
	data := "generated sinusoids"
	if o.Data != "" {
		data = filepath.Base(o.Data)
	}
	fmt.Printf("%d points over %d series, %d partitions (%s), window %d stride %d, learner %s, embeddings %d\n",
		o.Points, o.Series, o.Partitions, data, o.Length, o.Stride, o.Model, o.Dim)
	if o.Config != "" {
		fmt.Printf("(b) and (c) configured from %s\n", o.Config)
	}
	fmt.Printf("%s; %s; topic preloaded in %.1fs\n\n", r.Machine, r.Date, r.ProduceSec)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tpoints/s\tseconds\tCPU s\tpeak RSS\tratio to (a)\tbroker CPU s\tinfluxd CPU s\tcores busy\twhat")
	for _, p := range r.Phases {
		influxd := "-"
		if o.InfluxdPID > 0 {
			influxd = fmt.Sprintf("%.2f", p.InfluxdCPUSeconds)
		}
		fmt.Fprintf(tw, "(%s)\t%.0f\t%.2f\t%.2f\t%d MiB\t%.2f\t%.2f\t%s\t%.2f\t%s\n", p.Name, p.PointsPerSec, p.Seconds, p.CPUSeconds, p.PeakRSSBytes>>20,
			p.PointsPerSec/r.Phases[0].PointsPerSec, p.BrokerCPUSeconds, influxd, p.CoresBusy(), p.What)
	}
	tw.Flush()
	fmt.Printf("(CPU s: the phase's process; broker CPU s: the embedded broker's, in this process; influxd CPU s: the\n" +
		"InfluxDB server's, when its process id is known; each over the phase's run. cores busy: their sum per second.)\n")
	fmt.Printf("\n(b)/(a) = %.2f, (c)/(a) = %.2f, (d)/(a) = %.2f", r.RatioB, r.RatioC, r.RatioD)
	if r.RatioE > 0 {
		fmt.Printf(", (e)/(a) = %.2f", r.RatioE)
	}
	fmt.Println()
	for _, p := range r.Phases {
		if p.RepartitionSeconds > 0 {
			fmt.Printf("(%s): the repartition stage wrote the input to the internal topic in %.2fs (%.0f points/s), then the learning pipeline read it\n",
				p.Name, p.RepartitionSeconds, float64(p.Points)/p.RepartitionSeconds)
		}
	}
	if len(r.Stages) > 0 {
		fmt.Printf("\nwhere (c)'s CPU time goes (CPU profile, by call stack):\n")
		tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		for _, s := range r.Stages {
			fmt.Fprintf(tw, "  %s\t%.2fs\t%.1f%%\n", s.Name, s.Seconds, 100*s.Share)
		}
		tw.Flush()
	}
}

// newBenchConsumeCmd is phase (a), run as a child by `bench throughput`.
func newBenchConsumeCmd() *cobra.Command {
	var brokers, topic, group, timingOut string
	cmd := &cobra.Command{
		Use:    "consume",
		Short:  "Phase (a) of bench throughput: fetch a topic to its end, discard, commit",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var tm pipeline.Timing
			n, err := throughput.Consume(cmd.Context(), splitList(brokers), topic, group, &tm, newLogger(config.Log{Level: "warn", Format: "text"}))
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "consumed %d messages\n", n)
			return writeTiming(timingOut, &tm)
		},
	}
	cmd.Flags().StringVar(&brokers, "brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated host:port")
	cmd.Flags().StringVar(&topic, "topic", "bench", "topic")
	cmd.Flags().StringVar(&group, "group", "bench-a", "group")
	cmd.Flags().StringVar(&timingOut, "timing-out", "", "write the first-assignment and last-commit times here")
	return cmd
}

// writeTiming writes a run's span and this process's peak RSS as JSON, if
// path is set.
func writeTiming(path string, tm *pipeline.Timing) error {
	if path == "" {
		return nil
	}
	b, _ := json.Marshal(map[string]int64{"FirstAssigned": tm.FirstAssigned.Load(), "LastCommit": tm.LastCommit.Load(),
		"PeakRSS": throughput.PeakRSS()})
	return os.WriteFile(path, b, 0o644)
}
