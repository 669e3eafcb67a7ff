package ingest

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// PartitionSpan is what one partition's log holds: the offsets
// [First, End) and the record times of its first and last records.
type PartitionSpan struct {
	Partition  int
	First, End int64
	// FirstTime and LastTime are zero when the partition is empty.
	FirstTime, LastTime time.Time
}

// Records is the number of offsets in the log.
func (s PartitionSpan) Records() int64 { return max(0, s.End-s.First) }

// Spans reads the first and the last record of every partition of topic,
// in partition order: what a replay of a time range can find there (its
// offsets are resolved from these record times).
func (c *Cluster) Spans(ctx context.Context, topic string) ([]PartitionSpan, error) {
	ends, err := c.Ends(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make([]PartitionSpan, 0, len(ends))
	for part, end := range ends {
		first, err := c.First(ctx, topic, part)
		if err != nil {
			return nil, err
		}
		s := PartitionSpan{Partition: part, First: first, End: end}
		if first < end {
			if s.FirstTime, err = c.recordTime(ctx, topic, part, first); err != nil {
				return nil, err
			}
			if s.LastTime, err = c.recordTime(ctx, topic, part, end-1); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// recordTime is the time of the record at offset (or of the first record
// after it, if offset is not in the log: a compacted or transactional one).
func (c *Cluster) recordTime(ctx context.Context, topic string, part int, offset int64) (time.Time, error) {
	resp, err := c.client.Fetch(ctx, &kafka.FetchRequest{
		Topic: topic, Partition: part, Offset: offset,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s/%d at %d: %w", topic, part, offset, err)
	}
	for {
		r, err := resp.Records.ReadRecord()
		if err != nil {
			return time.Time{}, fmt.Errorf("read %s/%d at %d: no record (%v)", topic, part, offset, err)
		}
		if r.Offset >= offset { // a record batch can start before the offset asked for
			return r.Time, nil
		}
	}
}
