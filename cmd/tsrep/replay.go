package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/pipeline"
	"github.com/tsrep/tsrep/query"
)

func init() { registry = append(registry, newReplayCmd) }

func newReplayCmd() *cobra.Command {
	var cfgPath, from, to, run, measurement, tagList, precision string
	var files []string
	var partitions int
	var csvOpt dataset.CSVOptions
	cmd := &cobra.Command{
		Use:   "replay (--from T1 [--to T2] | --file F...)",
		Short: "Backfill: run a time range of the topics, or files, through the same pipeline, with the original timestamps",
		Long: `replay reads a time range from the configured topics (resolving each
partition's offsets for the range with ListOffsets, without touching the
consumer group's offsets) or data files (CSV, line protocol, Arrow IPC,
Parquet), runs it through the same windowing, learner and sink as a live
run, and exits. Points keep their original timestamps: replaying the same
range again overwrites the same points. With --run NAME every output point
carries the tag run=NAME, so a backfill can be compared with the live run.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if (from == "") == (len(files) == 0) {
				return errors.New("give either --from (a time range of the topics) or --file (data files)")
			}
			t1, err := query.ParseTime(from, time.Now())
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			t2, err := query.ParseTime(to, time.Now())
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			log := newLogger(cfg.Log)
			o := pipeline.ServiceOptions{Log: log, Progress: &pipeline.Progress{}}
			if run != "" {
				o.ExtraTags = []ingest.KV{{Key: "run", Value: run}}
			}
			ctx := cmd.Context()
			p, closeAll, err := pipeline.Connect(ctx, cfg, o)
			if err != nil {
				return err
			}
			defer closeAll()
			t0 := time.Now()
			if len(files) > 0 {
				tags, err := parseTags(tagList)
				if err != nil {
					return err
				}
				prec, err := config.PrecisionDuration(precision)
				if err != nil {
					return fmt.Errorf("--precision: %w", err)
				}
				var msgs []feed.Message
				for _, f := range files {
					meas := measurement
					if meas == "" {
						meas = baseName(f)
					}
					m, err := feed.ReadFile(f, meas, tags, csvOpt, int64(prec))
					if err != nil {
						return err
					}
					msgs = append(msgs, m...)
				}
				msgs = feed.Between(msgs, t1, t2)
				stop := showProgress("replaying files", int64(len(msgs)), o.Progress, log)
				err = p.ReplayMessages(ctx, cfg.Kafka.Topics[0], partitions, msgs, time.Time{}, time.Time{})
				stop()
				if err != nil {
					return err
				}
			} else {
				ranges, err := p.KafkaRanges(ctx, t1, t2)
				if err != nil {
					return err
				}
				var total int64
				for _, r := range ranges {
					total += r.Messages()
				}
				stop := showProgress("replaying "+strings.Join(cfg.Kafka.Topics, ","), total, o.Progress, log)
				err = p.Replay(ctx, ranges)
				stop()
				if err != nil {
					return err
				}
			}
			n, pts := o.Progress.Messages.Load(), o.Progress.Points.Load()
			d := time.Since(t0)
			fmt.Printf("replayed %d messages (%d points) in %s (%.0f points/s)\n", n, pts, d.Round(time.Millisecond), float64(pts)/d.Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "config.toml", "configuration file")
	f.StringVar(&from, "from", "", "start of the range: RFC 3339 time, a date, or relative like -24h or -7d")
	f.StringVar(&to, "to", "", "end of the range, exclusive (default: up to now / the end)")
	f.StringArrayVar(&files, "file", nil, "data file to replay instead of Kafka (repeatable): .csv, .arrow/.ipc, .parquet, or line protocol")
	f.IntVar(&partitions, "partitions", 4, "for --file: spread series over this many partitions as the producer would (match the topic's count to reproduce a Kafka run exactly)")
	f.StringVar(&run, "run", "", "tag every output point with run=NAME (default: write to the live series)")
	f.StringVar(&measurement, "measurement", "", "measurement of table files (default: the file name)")
	f.StringVar(&tagList, "tags", "", "tags of table files, k=v,k2=v2")
	f.StringVar(&csvOpt.TimeColumn, "time-column", "", "time column of table files")
	f.StringVar(&csvOpt.TimeLayout, "time-layout", "", "Go time layout of a text time column (default: inferred)")
	f.StringVar(&precision, "precision", "ns", "timestamp precision of line-protocol files")
	return cmd
}

func parseTags(list string) (map[string]string, error) {
	tags := map[string]string{}
	for _, kv := range strings.Split(list, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--tags: %q is not key=value", kv)
		}
		tags[k] = v
	}
	return tags, nil
}
