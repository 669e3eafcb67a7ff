package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

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
	return p.replay(ctx, len(ranges), func(i int) (string, int, ingest.Source, int64, int64, func(), error) {
		r := ranges[i]
		src := p.newReader(partitionID{r.Topic, r.Partition}, r.Start)
		return r.Topic, r.Partition, src, r.Start, r.End, src.Close, nil
	})
}

// ReplayMessages runs messages read from files through the pipeline as if
// they had been produced to topic with the given partition count: each
// goes to the partition kafka-go's hash balancer (the one `tsrep produce`
// uses) picks for its key, so a file replay and a replay of the same data
// from Kafka learn and write the same. Only messages with a time in
// [from, to) are used (zero bounds are open).
func (p *Pipeline) ReplayMessages(ctx context.Context, topic string, partitions int, msgs []feed.Message, from, to time.Time) error {
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
	return p.replay(ctx, partitions, func(i int) (string, int, ingest.Source, int64, int64, func(), error) {
		return topic, i, &memSource{msgs: parts[i]}, 0, int64(len(parts[i])), func() {}, nil
	})
}

// replay runs n partitions given by open, in parallel.
func (p *Pipeline) replay(ctx context.Context, n int, open func(i int) (topic string, part int, src ingest.Source, start, end int64, close func(), err error)) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic, part, src, start, end, closeSrc, err := open(i)
			if err != nil {
				errs[i] = err
				return
			}
			defer closeSrc()
			if start >= end {
				return
			}
			id := partitionID{topic, part}
			pt, err := p.newPartition(id, nil, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer pt.close()
			p.env.log(id).Info("replaying", "start_offset", start, "end_offset", end)
			if err := pt.run(ctx, ctx, src, start, end); err != nil {
				errs[i] = fmt.Errorf("replay %s/%d: %w", topic, part, err)
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
