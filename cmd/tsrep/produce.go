package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
)

func init() { registry = append(registry, newProduceCmd) }

func newProduceCmd() *cobra.Command {
	var brokers, topic, measurement, tagList, precision string
	var partitions int
	var csvOpt dataset.CSVOptions
	cmd := &cobra.Command{
		Use:   "produce FILE...",
		Short: "Load CSV (one series per column) or line-protocol files into a topic, with the files' timestamps",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tags, err := parseTags(tagList)
			if err != nil {
				return err
			}
			prec, err := config.PrecisionDuration(precision)
			if err != nil {
				return fmt.Errorf("--precision: %w", err)
			}
			d, _ := ingest.NewDialer(config.Default().Kafka)
			for _, path := range args {
				meas := measurement
				if meas == "" {
					meas = baseName(path)
				}
				msgs, err := feed.ReadFile(path, meas, tags, csvOpt, int64(prec))
				if err != nil {
					return err
				}
				t0 := time.Now()
				err = feed.Produce(cmd.Context(), feed.ProduceOptions{
					Brokers: strings.Split(brokers, ","), Dialer: d, Topic: topic, Partitions: partitions,
				}, msgs)
				if err != nil {
					return err
				}
				fmt.Printf("%s: %d messages to %s in %s\n", path, len(msgs), topic, time.Since(t0).Round(time.Millisecond))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "brokers", "127.0.0.1:9092", "comma-separated broker addresses")
	f.StringVar(&topic, "topic", "metrics", "topic to write to (created if missing)")
	f.IntVar(&partitions, "partitions", 4, "partitions if the topic is created")
	f.StringVar(&measurement, "measurement", "", "measurement of CSV rows (default: the file name without extension)")
	f.StringVar(&tagList, "tags", "", "tags of CSV rows, k=v,k2=v2")
	f.StringVar(&csvOpt.TimeColumn, "time-column", "", "CSV time column (default: date/time/timestamp, else the first)")
	f.StringVar(&csvOpt.TimeLayout, "time-layout", "", "Go time layout of the CSV time column (default: inferred)")
	f.StringVar(&precision, "precision", "ns", "timestamp precision of line-protocol files: ns, us, ms, s")
	return cmd
}

// baseName is the file name without directory and extension, lower case,
// as a measurement name.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		p = p[i+1:]
	}
	if i := strings.IndexByte(p, '.'); i > 0 {
		p = p[:i]
	}
	return strings.ToLower(p)
}
