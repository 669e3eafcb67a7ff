package repartition

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/clock"
)

// Detection reads the newest messages of every input partition (not the
// consumer's stream: any instance sees every partition, whichever mode it
// runs in, and the hot path pays nothing), decodes them and counts, per
// partition, the series also found in another partition. A topic keyed by
// series has none; a topic written round robin, or with several series per
// message, has nearly all.

// SampleMessages is how many of the newest messages of each input
// partition a sample reads.
const SampleMessages = 1000

// maxSampledSeries bounds the series a sample keeps per partition.
const maxSampledSeries = 1 << 16

// Report is what a sample of the input says about its keys.
type Report struct {
	Messages int
	// Series is the number of distinct series sampled; Shared of them
	// were found in more than one partition.
	Series, Shared int
	Parts          []PartReport
	// Example is a shared series and two partitions it was found in.
	Example string
}

// PartReport is one partition's share of a Report.
type PartReport struct {
	Topic          string
	Partition      int
	Messages       int
	Series, Shared int
	Start, End     int64
	sampled        map[uint64]struct{}
	firstKey       map[uint64]string
}

// Unkeyed reports whether the sample found a series in more than one
// partition: the input is not keyed by series.
func (r Report) Unkeyed() bool { return r.Shared > 0 }

// String summarises the report for a log line.
func (r Report) String() string {
	if r.Messages == 0 {
		return "no messages sampled"
	}
	s := fmt.Sprintf("%d of %d series sampled from %d messages were found in more than one partition", r.Shared, r.Series, r.Messages)
	if r.Example != "" {
		s += " (e.g. " + r.Example + ")"
	}
	return s
}

// sampler is the decoder handler of a sample.
type sampler struct {
	multichannel bool
	key          []byte
	set          map[uint64]struct{}
	keys         map[uint64]string
}

func (s *sampler) add(k []byte) {
	if len(s.set) >= maxSampledSeries {
		return
	}
	h := fnv.New64a()
	h.Write(k)
	v := h.Sum64()
	if _, ok := s.set[v]; !ok {
		s.set[v] = struct{}{}
		s.keys[v] = string(k)
	}
}

// Point implements ingest.Handler.
func (s *sampler) Point(p *ingest.Point) {
	if s.multichannel {
		s.key = ingest.AppendSeriesPrefix(s.key[:0], p)
		s.add(s.key)
		return
	}
	for f := range p.Fields {
		s.key = ingest.AppendSeriesKey(s.key[:0], p, f)
		s.add(s.key)
	}
}

// Bad implements ingest.Handler.
func (s *sampler) Bad([]byte, ingest.Reason, error) {}

// Sample reads the newest n messages of every partition of the input
// topics and reports which series were found in more than one. The series
// are the learning pipeline's: measurement + tag set + field, or the
// measurement + tag set in multichannel mode.
func Sample(ctx context.Context, c *ingest.Cluster, cfg config.Config, n int) (Report, error) {
	dec, err := ingest.NewDecoder(cfg.Kafka.Format, ingest.DecoderOptions(cfg.Kafka))
	if err != nil {
		return Report{}, err
	}
	var r Report
	for _, topic := range cfg.Kafka.Topics {
		ends, err := c.Ends(ctx, topic)
		if err != nil {
			return Report{}, err
		}
		parts := make([]int, 0, len(ends))
		for p := range ends {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		for _, p := range parts {
			end := ends[p]
			first, err := c.First(ctx, topic, p)
			if err != nil {
				return Report{}, err
			}
			pr := PartReport{Topic: topic, Partition: p, Start: max(first, end-int64(n)), End: end}
			s := &sampler{multichannel: cfg.Window.Multichannel, set: map[uint64]struct{}{}, keys: map[uint64]string{}}
			if pr.Start < end {
				err := c.Scan(ctx, topic, p, pr.Start, end, 0, func(rec *ingest.ScannedRecord) bool {
					pr.Messages++
					dec.Decode(rec.Value, rec.Time.UnixNano(), s)
					return true
				})
				if err != nil {
					return Report{}, err
				}
			}
			pr.sampled, pr.firstKey = s.set, s.keys
			r.Messages += pr.Messages
			r.Parts = append(r.Parts, pr)
		}
	}
	where := map[uint64][]int{} // series -> parts (indexes into r.Parts)
	for i := range r.Parts {
		for h := range r.Parts[i].sampled {
			where[h] = append(where[h], i)
		}
	}
	r.Series = len(where)
	for h, ps := range where {
		if len(ps) < 2 {
			continue
		}
		r.Shared++
		for _, i := range ps {
			r.Parts[i].Shared++
		}
		if ex := fmt.Sprintf("%q in %s/%d and %s/%d", r.Parts[ps[0]].firstKey[h], r.Parts[ps[0]].Topic, r.Parts[ps[0]].Partition,
			r.Parts[ps[1]].Topic, r.Parts[ps[1]].Partition); r.Example == "" || ex < r.Example {
			r.Example = ex
		}
	}
	for i := range r.Parts {
		r.Parts[i].Series = len(r.Parts[i].sampled)
		r.Parts[i].sampled, r.Parts[i].firstKey = nil, nil
	}
	return r, nil
}

// Detector samples the input now and then, exports tsrep_unkeyed_series
// and tsrep_sampled_series, and warns when the input is read directly
// but is not keyed by series.
type Detector struct {
	Cluster *ingest.Cluster
	Config  config.Config
	Log     *slog.Logger
	Metrics *Metrics
	Clock   clock.Clock
	// Direct says the learning pipeline reads the input topics directly
	// (no repartitioning): unkeyed input is then a warning.
	Direct bool
	// Every is the time between samples (0: DetectEvery).
	Every time.Duration
}

// DetectEvery is the default time between two samples of the input.
const DetectEvery = 10 * time.Minute

// Run samples at once (or takes first, a sample just made) and then every
// d.Every until ctx ends.
func (d *Detector) Run(ctx context.Context, first *Report) {
	clk := d.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	every := d.Every
	if every <= 0 {
		every = DetectEvery
	}
	warned := false
	for {
		var r Report
		var err error
		if first != nil {
			r, first = *first, nil
		} else {
			r, err = Sample(ctx, d.Cluster, d.Config, SampleMessages)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.Log.Debug("sampling the input for unkeyed series failed", "err", err)
		} else {
			d.Observe(r)
			switch {
			case r.Unkeyed() && d.Direct:
				d.Log.Warn("the input is not keyed by series: "+r.String()+"; each partition sees part of those series, "+
					"and their windows, normalisation and forecasts are wrong. Set kafka.repartition = \"always\" (or \"auto\" and restart every instance), "+
					"or key the producer by measurement + tag set (Telegraf: [[outputs.kafka]] routing_tag)", "topics", d.Config.Kafka.Topics)
				warned = true
			case !r.Unkeyed() && warned:
				d.Log.Info("the input's newest messages are keyed by series again", "topics", d.Config.Kafka.Topics)
				warned = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-clk.After(every):
		}
	}
}

// Observe exports a report's counts.
func (d *Detector) Observe(r Report) {
	if d.Metrics == nil {
		return
	}
	for _, p := range r.Parts {
		part := strconv.Itoa(p.Partition)
		d.Metrics.Unkeyed.WithLabelValues(p.Topic, part).Set(float64(p.Shared))
		d.Metrics.Sampled.WithLabelValues(p.Topic, part).Set(float64(p.Series))
	}
}
