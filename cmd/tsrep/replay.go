package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	var cf configFlags
	var from, to, run, measurement, tagList, precision string
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
carries the tag run=NAME, so a backfill can be compared with the live run.
A range that holds no records is a warning that shows what the topics
(or files) hold.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := cf.load(cmd)
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
			reg := prometheus.NewRegistry()
			o := pipeline.ServiceOptions{Log: log, Progress: &pipeline.Progress{}, Registry: reg}
			if run != "" {
				o.ExtraTags = []ingest.KV{{Key: "run", Value: run}}
			}
			ctx := cmd.Context()
			p, closeAll, err := pipeline.Connect(ctx, cfg, o)
			if err != nil {
				return err
			}
			defer closeAll()
			stderr := cmd.ErrOrStderr()
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
				all := msgs
				msgs = feed.Between(msgs, t1, t2)
				if len(msgs) == 0 {
					warnEmptyFiles(stderr, files, all, t1, t2)
					return nil
				}
				stop := showProgress("replaying "+strings.Join(files, ","), int64(len(msgs)), o.Progress, log)
				err = p.ReplayFiles(ctx, files, cfg.Kafka.Topics[0], partitions, msgs)
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
				if total == 0 {
					return warnEmptyRange(ctx, stderr, cfg.Kafka, t1, t2)
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
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "replayed %d messages (%d points) in %s (%.0f points/s)\n", n, pts, d.Round(time.Millisecond), float64(pts)/d.Seconds())
			bad, dead, err := pipeline.RejectCounts(reg)
			if err != nil {
				return err
			}
			if line := rejectSummary(bad, dead, cfg.Kafka.DeadLetterTopic); line != "" {
				fmt.Fprintln(out, line)
			}
			return nil
		},
	}
	f := cmd.Flags()
	cf.register(f, flagBrokers|flagInfluxURL, false)
	f.StringVar(&from, "from", "", "start of the range: RFC 3339 time, a date, or relative like -24h or -7d")
	f.StringVar(&to, "to", "", "end of the range, exclusive (default: up to now / the end)")
	f.StringArrayVar(&files, "file", nil, "data file to replay instead of Kafka (repeatable): .csv, .arrow/.ipc, .parquet, or line protocol")
	f.IntVar(&partitions, "partitions", 4, "for --file: spread series over this many partitions as the producer would (match the topic's count to reproduce a Kafka run exactly)")
	f.StringVar(&run, "run", "", "tag every output point with run=NAME (default: write to the live series)")
	f.StringVar(&measurement, "measurement", "", "measurement of table files (default: "+measurementDefault+")")
	f.StringVar(&tagList, "tags", "", "tags of table files, k=v,k2=v2")
	f.StringVar(&csvOpt.TimeColumn, "time-column", "", "time column of table files")
	f.StringVar(&csvOpt.TimeLayout, "time-layout", "", "Go time layout of a text time column (default: inferred)")
	f.StringVar(&precision, "precision", "ns", "timestamp precision of line-protocol files")
	return cmd
}

// rejectSummary is the replay summary's line on bad input: how much, by
// reason, and how much of it went to the dead-letter topic ("" if none).
func rejectSummary(bad, dead map[string]int64, topic string) string {
	total, list := sumByReason(bad)
	if total == 0 {
		return ""
	}
	s := fmt.Sprintf("bad input: %d (%s)", total, list)
	switch n, _ := sumByReason(dead); {
	case topic == "":
		s += "; not dead-lettered (kafka.dead_letter_topic is empty)"
	case n > 0:
		s += fmt.Sprintf("; dead-lettered to %s: %d", topic, n)
	default:
		s += fmt.Sprintf("; dead-lettered to %s: none (these reasons are only counted)", topic)
	}
	return s
}

// sumByReason is the total of counts and "reason n, ..." in reason order.
func sumByReason(counts map[string]int64) (int64, string) {
	var total int64
	reasons := make([]string, 0, len(counts))
	for r, n := range counts {
		if n > 0 {
			total += n
			reasons = append(reasons, r)
		}
	}
	slices.Sort(reasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, counts[r])
	}
	return total, strings.Join(parts, ", ")
}

// rangeText is [from, to) as the warnings show it.
func rangeText(from, to time.Time) string {
	start, end := "the beginning", "the end"
	if !from.IsZero() {
		start = from.UTC().Format(time.RFC3339)
	}
	if !to.IsZero() {
		end = to.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("[%s, %s)", start, end)
}

// warnEmptyRange says that [from, to) holds no records and what each
// topic does hold: its records' first and last times.
func warnEmptyRange(ctx context.Context, w io.Writer, k config.Kafka, from, to time.Time) error {
	fmt.Fprintf(w, "warning: no records of %s in %s: nothing replayed\n", strings.Join(k.Topics, ", "), rangeText(from, to))
	cl, err := ingest.NewCluster(k)
	if err != nil {
		return err
	}
	for _, topic := range k.Topics {
		spans, err := cl.Spans(ctx, topic)
		if err != nil {
			return err
		}
		var n int64
		var first, last time.Time
		for _, s := range spans {
			if s.Records() == 0 {
				continue
			}
			n += s.Records()
			if first.IsZero() || s.FirstTime.Before(first) {
				first = s.FirstTime
			}
			if s.LastTime.After(last) {
				last = s.LastTime
			}
		}
		if n == 0 {
			fmt.Fprintf(w, "  topic %s: empty (%d partitions)\n", topic, len(spans))
			continue
		}
		fmt.Fprintf(w, "  topic %s: %d records from %s to %s (%d partitions)\n", topic, n,
			first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), len(spans))
	}
	return nil
}

// warnEmptyFiles says that no message of the files is in [from, to) and
// what time range they cover.
func warnEmptyFiles(w io.Writer, files []string, msgs []feed.Message, from, to time.Time) {
	fmt.Fprintf(w, "warning: no rows of %s in %s: nothing replayed\n", strings.Join(files, ", "), rangeText(from, to))
	if len(msgs) == 0 {
		fmt.Fprintf(w, "  the files hold no rows\n")
		return
	}
	lo, hi := msgs[0].Time, msgs[0].Time
	for _, m := range msgs {
		lo, hi = min(lo, m.Time), max(hi, m.Time)
	}
	fmt.Fprintf(w, "  the files hold %d rows from %s to %s\n", len(msgs),
		time.Unix(0, lo).UTC().Format(time.RFC3339), time.Unix(0, hi).UTC().Format(time.RFC3339))
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
