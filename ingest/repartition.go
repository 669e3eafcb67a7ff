package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// The Kafka side of the repartition stage (package repartition): its
// internal topic, produce requests to one partition at a time with the
// offsets they got, reads of records with their headers, and commits that
// carry metadata.

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record to produce.
type Record struct {
	Key, Value []byte
	Headers    []Header
	Time       time.Time
}

// RunSingleGroup joins consumer group group for topics, as RunGroup does
// for the configured group and topics, but with every partition given to
// one member (GroupConfig.Single).
func (c *Cluster) RunSingleGroup(ctx context.Context, log *slog.Logger, group string, topics []string, run func(ctx context.Context, g *Generation)) error {
	return RunGroup(ctx, GroupConfig{
		Brokers: c.cfg.Brokers, Topics: topics, Group: group,
		SessionTimeout: c.cfg.SessionTimeout.Duration, Dialer: c.dialer, Log: log, Single: true,
	}, run)
}

// createTopic creates topic with the given partitions and configuration
// if it does not exist, and returns its partition count once the
// metadata shows it.
func (c *Cluster) createTopic(ctx context.Context, topic string, partitions int, entries []kafka.ConfigEntry) (int, error) {
	if n, err := c.Partitions(ctx, topic); err == nil && n > 0 {
		return n, nil
	}
	resp, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: -1, ConfigEntries: entries,
	}}})
	if err != nil {
		return 0, fmt.Errorf("create topic %s: %w", topic, c.explain(ctx, err))
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return 0, fmt.Errorf("create topic %s: %w", topic, err)
	}
	for i := 0; ; i++ { // metadata can lag the creation briefly
		n, err := c.Partitions(ctx, topic)
		if err == nil && n > 0 {
			return n, nil
		}
		if i == 50 {
			return 0, fmt.Errorf("topic %s created but not visible: %v", topic, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EnsureRepartitionTopic creates the repartition stage's internal topic
// if it does not exist (cleanup.policy=delete, retention.ms from
// retention, 0 keeping records forever) and returns its partition count,
// which is the existing topic's if it exists.
func (c *Cluster) EnsureRepartitionTopic(ctx context.Context, topic string, partitions int, retention time.Duration) (int, error) {
	ms := int64(-1)
	if retention > 0 {
		ms = retention.Milliseconds()
	}
	return c.createTopic(ctx, topic, max(1, partitions), []kafka.ConfigEntry{
		{ConfigName: "cleanup.policy", ConfigValue: "delete"},
		{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(ms, 10)},
	})
}

// Produce writes recs, in order, to partition part of topic in one
// request and returns the offset of the first once every in-sync replica
// has them (acks=all). An error leaves it unknown whether they were
// written: the caller writes them again, or finds out (see Scan).
func (c *Cluster) Produce(ctx context.Context, topic string, part int, recs []Record) (int64, error) {
	krs := make([]kafka.Record, len(recs))
	for i, r := range recs {
		kr := kafka.Record{Time: r.Time, Value: kafka.NewBytes(r.Value)}
		if r.Key != nil {
			kr.Key = kafka.NewBytes(r.Key)
		}
		if len(r.Headers) > 0 {
			kr.Headers = make([]kafka.Header, len(r.Headers))
			for j, h := range r.Headers {
				kr.Headers[j] = kafka.Header{Key: h.Key, Value: h.Value}
			}
		}
		krs[i] = kr
	}
	resp, err := c.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: topic, Partition: part, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(krs...),
	})
	if err != nil {
		return 0, fmt.Errorf("produce to %s/%d: %w", topic, part, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("produce to %s/%d: %w", topic, part, resp.Error)
	}
	for _, e := range resp.RecordErrors {
		return 0, fmt.Errorf("produce to %s/%d: %w", topic, part, e)
	}
	return resp.BaseOffset, nil
}

// ScannedRecord is a record read by Scan. Its slices are valid only
// during the callback.
type ScannedRecord struct {
	Offset  int64
	Time    time.Time
	Key     []byte
	Value   []byte
	Headers []Header
}

// Scan calls fn with the records of topic/part in [from, end), in order,
// until fn returns false. Offsets missing from the log (compacted, or
// deleted by retention before from) are skipped.
func (c *Cluster) Scan(ctx context.Context, topic string, part int, from, end int64, maxBytes int, fn func(*ScannedRecord) bool) error {
	if maxBytes <= 0 {
		maxBytes = 4 << 20
	}
	var rec ScannedRecord
	for from < end {
		resp, err := c.client.Fetch(ctx, &kafka.FetchRequest{
			Topic: topic, Partition: part, Offset: from,
			MinBytes: 1, MaxBytes: int64(maxBytes), MaxWait: 100 * time.Millisecond,
		})
		if err != nil {
			return fmt.Errorf("read %s/%d at %d: %w", topic, part, from, err)
		}
		if resp.Error != nil {
			if errors.Is(resp.Error, kafka.OffsetOutOfRange) && resp.LogStartOffset > from {
				from = resp.LogStartOffset // deleted by retention
				continue
			}
			return fmt.Errorf("read %s/%d at %d: %w", topic, part, from, resp.Error)
		}
		got := false
		for {
			r, err := resp.Records.ReadRecord()
			if err != nil {
				break
			}
			if r.Offset < from {
				continue // a record batch can start before the offset asked for
			}
			rec.Offset, rec.Time, rec.Key, rec.Value = r.Offset, r.Time, nil, nil
			if r.Key != nil {
				rec.Key, _ = readAll(r.Key)
			}
			if r.Value != nil {
				rec.Value, _ = readAll(r.Value)
			}
			rec.Headers = rec.Headers[:0]
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: h.Value})
			}
			got = true
			from = r.Offset + 1
			if r.Offset >= end {
				return nil
			}
			if !fn(&rec) || from >= end {
				return nil
			}
		}
		if !got {
			if resp.HighWatermark <= from {
				return nil
			}
			if resp.LogStartOffset > from {
				from = resp.LogStartOffset
				continue
			}
			return fmt.Errorf("read %s/%d at %d: no record returned below the high watermark %d", topic, part, from, resp.HighWatermark)
		}
	}
	return nil
}

// OffsetMeta is a committed offset with its metadata string.
type OffsetMeta struct {
	Offset   int64
	Metadata string
}

// CommittedMeta is the group's committed offset of each partition of
// topic with its metadata (Offset -1: none).
func (c *Cluster) CommittedMeta(ctx context.Context, group, topic string, partitions []int) (map[int]OffsetMeta, error) {
	resp, err := c.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: partitions}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, err)
	}
	out := make(map[int]OffsetMeta, len(partitions))
	for _, p := range partitions {
		out[p] = OffsetMeta{Offset: -1}
	}
	if errors.Is(resp.Error, kafka.GroupIdNotFound) { // a group that never committed (some brokers say so)
		return out, nil
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, resp.Error)
	}
	for _, po := range resp.Topics[topic] {
		if errors.Is(po.Error, kafka.GroupIdNotFound) {
			continue
		}
		if po.Error != nil {
			return nil, fmt.Errorf("committed offset of group %s on %s/%d: %w", group, topic, po.Partition, po.Error)
		}
		out[po.Partition] = OffsetMeta{Offset: po.CommittedOffset, Metadata: po.Metadata}
	}
	return out, nil
}

// CommitMeta commits the next offsets to read of topic-partitions with
// their metadata (which Committed offsets cannot carry), in one request
// in this generation of the group.
func (g *Generation) CommitMeta(ctx context.Context, c *Cluster, offsets map[string]map[int]OffsetMeta) error {
	req := &kafka.OffsetCommitRequest{
		GroupID: g.gen.GroupID, GenerationID: int(g.gen.ID), MemberID: g.gen.MemberID,
		Topics: make(map[string][]kafka.OffsetCommit, len(offsets)),
	}
	for topic, parts := range offsets {
		for part, om := range parts {
			req.Topics[topic] = append(req.Topics[topic], kafka.OffsetCommit{Partition: part, Offset: om.Offset, Metadata: om.Metadata})
		}
	}
	g.mu.Lock() // as Commit: one commit at a time
	defer g.mu.Unlock()
	resp, err := c.client.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", g.gen.GroupID, err)
	}
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return fmt.Errorf("commit offset of group %s on %s/%d: %w", g.gen.GroupID, topic, p.Partition, p.Error)
			}
		}
	}
	return nil
}

// GroupTopics returns the topics the live members of group subscribe to
// (none when the group has no members).
func (c *Cluster) GroupTopics(ctx context.Context, group string) ([]string, error) {
	resp, err := c.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, g := range resp.Groups {
		if g.Error != nil {
			if errors.Is(g.Error, kafka.GroupIdNotFound) {
				continue
			}
			return nil, fmt.Errorf("describe group %s: %w", group, g.Error)
		}
		for _, m := range g.Members {
			for _, t := range m.MemberMetadata.Topics {
				if !seen[t] {
					seen[t] = true
					out = append(out, t)
				}
			}
		}
	}
	return out, nil
}
