package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
)

// Range is the offsets [Start, End) of one partition to replay.
type Range struct {
	Topic     string
	Partition int
	Start     int64
	End       int64
}

// Messages is the number of offsets in the range.
func (r Range) Messages() int64 { return max(0, r.End-r.Start) }

// KafkaRanges resolves, for every partition of the configured topics, the
// offsets of the records whose timestamps fall in [from, to) (to zero: up
// to the current end). Kafka's ListOffsets finds the first offset at or
// after each bound, so the range is exact when record timestamps grow
// within a partition, as they do for data produced in time order.
func (p *Pipeline) KafkaRanges(ctx context.Context, from, to time.Time) ([]Range, error) {
	var out []Range
	for _, topic := range p.cfg.Kafka.Topics {
		ends, err := p.o.Kafka.Ends(ctx, topic)
		if err != nil {
			return nil, err
		}
		for part, end := range ends {
			r := Range{Topic: topic, Partition: part, End: end}
			if r.Start, err = p.o.Kafka.At(ctx, topic, part, from); err != nil {
				return nil, err
			}
			if !to.IsZero() {
				if r.End, err = p.o.Kafka.At(ctx, topic, part, to); err != nil {
					return nil, err
				}
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// Replay runs the ranges through the same windowing, learner and sink as a
// live run, partitions in parallel, without joining the consumer group,
// committing offsets or writing checkpoints. Each partition starts from
// fresh state (or the learner Options.NewLearner gives). Points keep their
// timestamps, so replaying a range again overwrites the same points.
func (p *Pipeline) Replay(ctx context.Context, ranges []Range) error {
	return p.replay(ctx, len(ranges), func(i int) replayPart {
		r := ranges[i]
		id := partitionID{r.Topic, r.Partition}
		src := p.newReader(id, r.Start)
		return replayPart{id: id, src: src, start: r.Start, end: r.End, close: src.Close,
			log: p.env.log(id).With("start_offset", r.Start, "end_offset", r.End)}
	})
}

// ReplayMessages runs messages read from files through the pipeline as if
// they had been produced to topic with the given partition count: each
// goes to the partition kafka-go's hash balancer (the one `tsrep produce`
// uses) picks for its key, so a file replay and a replay of the same data
// from Kafka learn and write the same. Only messages with a time in
// [from, to) are used (zero bounds are open).
func (p *Pipeline) ReplayMessages(ctx context.Context, topic string, partitions int, msgs []feed.Message, from, to time.Time) error {
	return p.replayMessages(ctx, nil, topic, partitions, msgs, from, to)
}

// ReplayFiles is ReplayMessages for messages read from files: its log
// lines name the files instead of the topic. topic still names the
// partitions in metrics and dead letters.
func (p *Pipeline) ReplayFiles(ctx context.Context, files []string, topic string, partitions int, msgs []feed.Message) error {
	return p.replayMessages(ctx, files, topic, partitions, msgs, time.Time{}, time.Time{})
}

func (p *Pipeline) replayMessages(ctx context.Context, files []string, topic string, partitions int, msgs []feed.Message, from, to time.Time) error {
	if partitions < 1 {
		return errors.New("replay: partitions must be at least 1")
	}
	parts := make([][]ingest.Message, partitions)
	for _, m := range feed.Between(msgs, from, to) {
		part := ingest.PartitionOf(m.Key, partitions)
		parts[part] = append(parts[part], ingest.Message{
			Topic: topic, Partition: part, Offset: int64(len(parts[part])),
			Key: m.Key, Value: m.Value, Time: time.Unix(0, m.Time),
		})
	}
	return p.replay(ctx, partitions, func(i int) replayPart {
		id := partitionID{topic, i}
		log := p.env.log(id)
		if files != nil {
			log = p.log.With("files", strings.Join(files, ","), "partition", i)
		}
		return replayPart{id: id, src: &memSource{msgs: parts[i]}, end: int64(len(parts[i])), close: func() {},
			log: log.With("messages", len(parts[i]))}
	})
}

// replayPart is one partition of a replay: its source, the offsets
// [start, end) to run, and the logger that says what it replays.
type replayPart struct {
	id         partitionID
	src        ingest.Source
	start, end int64
	close      func()
	log        *slog.Logger
}

// replay runs n partitions given by open, in parallel. With a shared
// encoder (ssl) the partitions share one, in memory, as a group's do: a
// partition that reaches its end stays, idle, until every one has written
// everything up to its end, so that none waits for it.
func (p *Pipeline) replay(ctx context.Context, n int, open func(i int) replayPart) error {
	parts := make([]replayPart, 0, n)
	defer func() {
		for _, o := range parts {
			o.close()
		}
	}()
	var members []string
	for i := 0; i < n; i++ {
		rp := open(i)
		parts = append(parts, rp)
		members = append(members, memberName(rp.id.topic, rp.id.part))
	}
	holdCtx, release := context.WithCancel(ctx)
	defer release()
	if p.shared {
		se, err := memSharedEncoder(p.cfg, members)
		if err != nil {
			return err
		}
		p.se = se
		defer func() { p.se = nil }()
		var mu sync.Mutex
		final := map[partitionID]bool{}
		p.env.onFinal = func(id partitionID) {
			mu.Lock()
			defer mu.Unlock()
			final[id] = true
			if len(final) == len(parts) {
				release()
			}
		}
		defer func() { p.env.onFinal = nil }()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, o := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pt, err := p.newPartition(o.id, nil, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer pt.close()
			pt.win.hold = p.se != nil
			if o.start >= o.end {
				pt.win.caughtUp = true
			}
			o.log.Info("replaying")
			if err := pt.run(holdCtx, ctx, o.src, o.start, o.end); err != nil {
				errs[i] = fmt.Errorf("replay %s/%d: %w", o.id.topic, o.id.part, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// memSource serves messages from memory.
type memSource struct {
	msgs []ingest.Message
	i    int
}

func (s *memSource) Fetch(ctx context.Context) (ingest.Message, error) {
	if err := ctx.Err(); err != nil {
		return ingest.Message{}, err
	}
	if s.i >= len(s.msgs) {
		return ingest.Message{}, io.EOF
	}
	s.i++
	return s.msgs[s.i-1], nil
}

// RejectCounts reads, from the registry given to Connect
// (ServiceOptions.Registry), the input rejected so far by reason
// (tsrep_bad_input_total) and the records written to the dead-letter topic
// by reason (tsrep_dead_letters_total): what a replay's summary reports.
func RejectCounts(g prometheus.Gatherer) (bad, deadLettered map[string]int64, err error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, nil, err
	}
	bad, deadLettered = map[string]int64{}, map[string]int64{}
	for _, mf := range mfs {
		var into map[string]int64
		switch mf.GetName() {
		case "tsrep_bad_input_total":
			into = bad
		case "tsrep_dead_letters_total":
			into = deadLettered
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					into[l.GetValue()] += int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return bad, deadLettered, nil
}
