package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
)

// Message is one Kafka record as the pipeline sees it. Key and Value alias
// the client's buffers: copy what outlives the next Fetch.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	// HighWaterMark is the partition's end when the record was fetched (0
	// if unknown): the lag after it is HighWaterMark - Offset - 1.
	HighWaterMark int64
	Time          time.Time
	Key, Value    []byte
}

// Source yields one partition's messages in offset order. A bounded source
// returns io.EOF after its last message.
type Source interface {
	Fetch(ctx context.Context) (Message, error)
}

// Committer commits the next offset to read of a topic-partition
// (*Generation is one).
type Committer interface {
	Commit(topic string, partition int, next int64) error
}

// Offsets answers the offset questions the pipeline asks a cluster.
type Offsets interface {
	// First is the earliest offset still in the partition's log.
	First(ctx context.Context, topic string, partition int) (int64, error)
	// End is the offset the next record written to the partition gets.
	End(ctx context.Context, topic string, partition int) (int64, error)
	// Ends is End of every partition of topic.
	Ends(ctx context.Context, topic string) (map[int]int64, error)
	// At is the first offset whose record time is at or after t (End if none).
	At(ctx context.Context, topic string, partition int, t time.Time) (int64, error)
	// Committed is the group's committed offset of each partition (-1: none).
	Committed(ctx context.Context, group, topic string, partitions []int) (map[int]int64, error)
}

// Cluster is tsrep's handle on a Kafka cluster: the connection settings of
// [kafka] (TLS, SASL) and an admin client. Everything kafka-go lives behind
// it and the interfaces of this package.
type Cluster struct {
	cfg    config.Kafka
	dialer *kafka.Dialer
	client *kafka.Client
}

// NewCluster prepares connections to the brokers of c (nothing is dialled
// yet).
func NewCluster(c config.Kafka) (*Cluster, error) {
	d, err := NewDialer(c)
	if err != nil {
		return nil, err
	}
	return &Cluster{cfg: c, dialer: d, client: NewClient(c.Brokers, d)}, nil
}

// Config is the [kafka] section the cluster was made from.
func (c *Cluster) Config() config.Kafka { return c.cfg }

// Dialer is the dialer with the configured TLS and SASL.
func (c *Cluster) Dialer() *kafka.Dialer { return c.dialer }

// First implements Offsets.
func (c *Cluster) First(ctx context.Context, topic string, partition int) (int64, error) {
	return ResolveOffset(ctx, c.client, topic, partition, StartEarliest, time.Time{})
}

// End implements Offsets.
func (c *Cluster) End(ctx context.Context, topic string, partition int) (int64, error) {
	return ResolveOffset(ctx, c.client, topic, partition, StartLatest, time.Time{})
}

// Ends implements Offsets.
func (c *Cluster) Ends(ctx context.Context, topic string) (map[int]int64, error) {
	return EndOffsets(ctx, c.client, topic)
}

// At implements Offsets.
func (c *Cluster) At(ctx context.Context, topic string, partition int, t time.Time) (int64, error) {
	return ResolveOffset(ctx, c.client, topic, partition, StartTime, t)
}

// Resolve returns the offset kind (and t, for StartTime) designates.
func (c *Cluster) Resolve(ctx context.Context, topic string, partition int, kind StartKind, t time.Time) (int64, error) {
	return ResolveOffset(ctx, c.client, topic, partition, kind, t)
}

// Committed implements Offsets.
func (c *Cluster) Committed(ctx context.Context, group, topic string, partitions []int) (map[int]int64, error) {
	resp, err := c.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: partitions}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, err)
	}
	out := make(map[int]int64, len(partitions))
	for _, p := range partitions {
		out[p] = -1
	}
	if errors.Is(resp.Error, kafka.GroupIdNotFound) { // a group that never committed (some brokers say so)
		return out, nil
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, resp.Error)
	}
	for _, po := range resp.Topics[topic] {
		out[po.Partition] = po.CommittedOffset
	}
	return out, nil
}

// explain adds to an admin request's error what a plain connection to the
// brokers says: kafka-go's admin client reports a refused SASL login, a
// TLS failure or a wrong address as an EOF, its dialer names them.
func (c *Cluster) explain(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || len(c.cfg.Brokers) == 0 {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, derr := c.dialer.DialContext(dctx, "tcp", c.cfg.Brokers[0])
	if derr != nil {
		return fmt.Errorf("%w (connecting to %s: %v)", err, c.cfg.Brokers[0], derr)
	}
	conn.Close()
	return err
}

// Partitions is the number of partitions of topic.
func (c *Cluster) Partitions(ctx context.Context, topic string) (int, error) {
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", topic, c.explain(ctx, err))
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("metadata of %s: topic missing from the response", topic)
}

// RunGroup joins the configured consumer group for topics (see RunGroup).
func (c *Cluster) RunGroup(ctx context.Context, log *slog.Logger, run func(ctx context.Context, g *Generation)) error {
	return RunGroup(ctx, GroupConfig{
		Brokers: c.cfg.Brokers, Topics: c.cfg.Topics, Group: c.cfg.Group,
		SessionTimeout: c.cfg.SessionTimeout.Duration, Dialer: c.dialer, Log: log,
	}, run)
}

// DeadLetters returns a writer to the configured dead-letter topic (nil
// when none is configured).
func (c *Cluster) DeadLetters(log *slog.Logger) *DeadLetterWriter {
	if c.cfg.DeadLetterTopic == "" {
		return nil
	}
	return NewDeadLetterWriter(c.cfg.Brokers, c.dialer, c.cfg.DeadLetterTopic, log)
}

// PartitionOf is the partition of n that kafka-go's hash balancer (the one
// `tsrep produce` uses, and Kafka's Java client's murmur2 is not) picks for
// key; a nil key goes to partition 0.
func PartitionOf(key []byte, n int) int {
	if key == nil || n <= 1 {
		return 0
	}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	h := &kafka.Hash{}
	return h.Balance(kafka.Message{Key: key}, ids...)
}
