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
	var cf configFlags
	var topic, measurement, tagList, precision string
	var partitions int
	var csvOpt dataset.CSVOptions
	cmd := &cobra.Command{
		Use:   "produce FILE...",
		Short: "Load CSV (one series per column) or line-protocol files into a topic, with the files' timestamps",
		Long: `produce writes each row of a CSV file (a time column and one series per
numeric column) or each line of a line-protocol file to a topic, keyed by
measurement + tag set, with the file's timestamps as the record times. It
connects as the configuration says (kafka.brokers, [kafka.tls],
[kafka.sasl]); the configuration file is optional.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := cf.load(cmd)
			if err != nil {
				return err
			}
			if topic == "" {
				topic = cfg.Kafka.Topics[0]
			}
			tags, err := parseTags(tagList)
			if err != nil {
				return err
			}
			prec, err := config.PrecisionDuration(precision)
			if err != nil {
				return fmt.Errorf("--precision: %w", err)
			}
			d, err := ingest.NewDialer(cfg.Kafka)
			if err != nil {
				return err
			}
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
					Brokers: cfg.Kafka.Brokers, Dialer: d, Topic: topic, Partitions: partitions,
				}, msgs)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d messages to %s in %s\n", path, len(msgs), topic, time.Since(t0).Round(time.Millisecond))
			}
			return nil
		},
	}
	f := cmd.Flags()
	cf.register(f, flagBrokers, true)
	f.StringVar(&topic, "topic", "", "topic to write to, created if missing (default: the first of kafka.topics)")
	f.IntVar(&partitions, "partitions", 4, "partitions if the topic is created")
	f.StringVar(&measurement, "measurement", "", "measurement of CSV rows (default: "+measurementDefault+")")
	f.StringVar(&tagList, "tags", "", "tags of CSV rows, k=v,k2=v2")
	f.StringVar(&csvOpt.TimeColumn, "time-column", "", "CSV time column (default: date/time/timestamp, else the first)")
	f.StringVar(&csvOpt.TimeLayout, "time-layout", "", "Go time layout of the CSV time column (default: inferred)")
	f.StringVar(&precision, "precision", "ns", "timestamp precision of line-protocol files: ns, us, ms, s")
	return cmd
}

// measurementDefault is how --measurement's help describes baseName.
const measurementDefault = "the file name up to its first dot, in lower case: ETTh1.csv gives etth1"

// baseName is the measurement a file's rows get by default: the file name
// without directory, up to its first dot, in lower case (measurement names
// are case-sensitive in InfluxDB; lower case is the convention Telegraf's
// follow, and what the demo and the README's queries use).
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		p = p[i+1:]
	}
	if i := strings.IndexByte(p, '.'); i > 0 {
		p = p[:i]
	}
	return strings.ToLower(p)
}
