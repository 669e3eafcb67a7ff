package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
)

// GroupConfig configures a consumer group.
type GroupConfig struct {
	Brokers        []string
	Topics         []string
	Group          string
	SessionTimeout time.Duration
	Dialer         *kafka.Dialer
	Log            *slog.Logger
	// Single gives every partition to one member of the group, the one
	// that had them if it is still there (the others stand by): for a
	// consumer that must see every partition at once.
	Single bool
}

// Assignment is one topic-partition given to this instance in a generation.
type Assignment struct {
	Topic     string
	Partition int
	// Committed is the group's committed offset, or -1 if it has none.
	Committed int64
}

// Generation is one stable membership of the group: its assignments and
// the way to commit offsets for them.
type Generation struct {
	ID          int32
	Assignments []Assignment
	gen         *kafka.Generation
	mu          sync.Mutex
}

// Commit commits the next offset to read for a topic-partition. Offsets are
// only ever committed explicitly, after the data before them is stored.
func (g *Generation) Commit(topic string, partition int, next int64) error {
	g.mu.Lock() // one coordinator connection: serialise commits
	defer g.mu.Unlock()
	return g.gen.CommitOffsets(map[string]map[int]int64{topic: {partition: next}})
}

// RunGroup joins the group and calls run for each generation with a
// context that ends when the generation does (a rebalance) or ctx ends.
// run must return promptly after its context ends, having drained its
// work: the group does not rejoin before. RunGroup returns when ctx ends.
func RunGroup(ctx context.Context, cfg GroupConfig, run func(ctx context.Context, g *Generation)) error {
	if PlaintextPassword(cfg.Dialer) {
		cfg.Log.Warn(config.PlainSASLWarning)
	}
	var balancers []kafka.GroupBalancer
	single := &singleBalancer{}
	if cfg.Single {
		balancers = []kafka.GroupBalancer{single}
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		GroupBalancers:        balancers,
		ID:                    cfg.Group,
		Brokers:               cfg.Brokers,
		Topics:                cfg.Topics,
		Dialer:                cfg.Dialer,
		SessionTimeout:        cfg.SessionTimeout,
		HeartbeatInterval:     cfg.SessionTimeout / 3, // kafka-go's 3s default would exceed short session timeouts
		RebalanceTimeout:      cfg.SessionTimeout,
		JoinGroupBackoff:      time.Second,
		StartOffset:           kafka.FirstOffset, // replaced per partition by kafka.start
		WatchPartitionChanges: true,
		ErrorLogger:           kafka.LoggerFunc(func(f string, a ...any) { cfg.Log.Debug("kafka group: " + fmt.Sprintf(f, a...)) }),
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", cfg.Group, err)
	}
	defer group.Close()
	// Instances that failed to join together do not retry in lockstep.
	joinBackoff := backoff.NewExponentialBackOff()
	joinBackoff.InitialInterval, joinBackoff.MaxInterval, joinBackoff.MaxElapsedTime = time.Second, 30*time.Second, 0
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return err
			}
			wait := joinBackoff.NextBackOff()
			cfg.Log.Warn("joining consumer group failed; retrying", "group", cfg.Group, "in", wait.Round(time.Millisecond), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		joinBackoff.Reset()
		g := &Generation{ID: gen.ID, gen: gen}
		for topic, parts := range gen.Assignments {
			for _, p := range parts {
				committed := p.Offset
				if committed < 0 { // FirstOffset / LastOffset sentinels: nothing committed
					committed = -1
				}
				g.Assignments = append(g.Assignments, Assignment{Topic: topic, Partition: p.ID, Committed: committed})
			}
		}
		single.owner.Store(len(g.Assignments) > 0)
		cfg.Log.Info("consumer group generation", "group", cfg.Group, "generation", gen.ID, "partitions", len(g.Assignments))
		done := make(chan struct{})
		gen.Start(func(genCtx context.Context) {
			defer close(done)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stop := context.AfterFunc(genCtx, cancel)
			defer stop()
			run(rctx, g)
		})
		<-done
	}
}

// singleBalancer assigns every partition to one member: the one that
// says (in its user data) it had them, else the first by member id.
type singleBalancer struct{ owner atomic.Bool }

func (*singleBalancer) ProtocolName() string { return "tsrep-single" }

func (b *singleBalancer) UserData() ([]byte, error) {
	if b.owner.Load() {
		return []byte{1}, nil
	}
	return []byte{0}, nil
}

func (*singleBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	if len(members) == 0 {
		return out
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b kafka.GroupMember) int { return strings.Compare(a.ID, b.ID) })
	pick := ""
	for _, m := range ms {
		out[m.ID] = map[string][]int{}
		if pick == "" && bytes.Equal(m.UserData, []byte{1}) {
			pick = m.ID // the member that had the partitions keeps them
		}
	}
	if pick == "" {
		pick = ms[0].ID
	}
	for _, p := range partitions {
		out[pick][p.Topic] = append(out[pick][p.Topic], p.ID)
	}
	return out
}

// StartKind says where a partition with no committed offset begins.
type StartKind int

// Start positions.
const (
	StartEarliest StartKind = iota
	StartLatest
	StartTime
)

// ResolveOffset returns the offset at which to start reading topic-partition
// from start: its first offset, its end, or the first offset whose record
// timestamp is at or after t (the end if there is none).
func ResolveOffset(ctx context.Context, client *kafka.Client, topic string, partition int, kind StartKind, t time.Time) (int64, error) {
	req := kafka.OffsetRequest{Partition: partition}
	switch kind {
	case StartEarliest:
		req.Timestamp = kafka.FirstOffset
	case StartLatest:
		req.Timestamp = kafka.LastOffset
	case StartTime:
		req.Timestamp = t.UnixMilli()
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{topic: {req}},
	})
	if err != nil {
		return 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, err)
	}
	for _, po := range resp.Topics[topic] {
		if po.Partition != partition {
			continue
		}
		if po.Error != nil {
			return 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, po.Error)
		}
		switch kind {
		case StartEarliest:
			return po.FirstOffset, nil
		case StartLatest:
			return po.LastOffset, nil
		}
		for off := range po.Offsets { // offset -> timestamp of that record
			if off >= 0 {
				return off, nil
			}
		}
		// No record at or after t: start at the end.
		return ResolveOffset(ctx, client, topic, partition, StartLatest, t)
	}
	return 0, fmt.Errorf("list offsets of %s/%d: partition missing from the response", topic, partition)
}

// EndOffsets returns the next offset to be written of each partition of topic.
func EndOffsets(ctx context.Context, client *kafka.Client, topic string) (map[int]int64, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.LastOffsetOf(p.ID))
		}
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64)
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}

// NewClient returns a kafka-go Client for admin requests (ListOffsets,
// Metadata) over the given dialer's transport settings.
func NewClient(brokers []string, d *kafka.Dialer) *kafka.Client {
	tr := &kafka.Transport{ClientID: "tsrep"}
	if d != nil {
		tr.TLS = d.TLS
		tr.SASL = d.SASLMechanism
		if d.ClientID != "" {
			tr.ClientID = d.ClientID
		}
	}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
}

// NewPartitionReader reads one topic-partition from offset. It is a plain
// partition reader, not a group member: the group is joined once by
// RunGroup, and offsets are committed explicitly through the Generation.
func NewPartitionReader(brokers []string, d *kafka.Dialer, topic string, partition int, offset int64, maxBytes int, maxWait time.Duration) (*kafka.Reader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        brokers,
		Topic:          topic,
		Partition:      partition,
		Dialer:         d,
		MinBytes:       1,
		MaxBytes:       maxBytes,
		MaxWait:        maxWait,
		QueueCapacity:  1024,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		MaxAttempts:    1 << 30, // a broker outage is waited out, never given up on
	})
	if err := r.SetOffset(offset); err != nil {
		r.Close()
		return nil, fmt.Errorf("seek %s/%d to %d: %w", topic, partition, offset, err)
	}
	return r, nil
}

// DeadLetter is a record for the dead-letter topic.
type DeadLetter struct {
	Value []byte
	// Truncated is the original size when Value was cut to
	// MaxDeadLetterValue (read back from the header), else 0.
	Truncated int
	Reason    Reason
	Err       string
	Topic     string
	Partition int
	Offset    int64
	Time      time.Time
}

// MaxDeadLetterValue bounds the bytes of input kept in a dead-letter
// record, so an oversized bad message still fits the brokers' default
// message size; the tsrep-truncated header then holds the original size.
const MaxDeadLetterValue = 64 << 10

// Headers of dead-letter records.
const (
	HeaderTruncated = "tsrep-truncated"
	HeaderReason    = "tsrep-reason"
	HeaderError     = "tsrep-error"
	HeaderTopic     = "tsrep-topic"
	HeaderPartition = "tsrep-partition"
	HeaderOffset    = "tsrep-offset"
)

// DeadLetterWriter writes to the dead-letter topic synchronously: a write
// returns once the broker has the records (acks=all), so the offsets of
// the input they came from can then be committed.
type DeadLetterWriter struct {
	w     *kafka.Writer
	topic string
	log   *slog.Logger
	// OnSkipped, if set, counts records the topic refused even cut down to
	// their headers.
	OnSkipped func(n int)
}

// NewDeadLetterWriter writes to topic; the topic is created on first use if
// the cluster allows it.
func NewDeadLetterWriter(brokers []string, d *kafka.Dialer, topic string, log *slog.Logger) *DeadLetterWriter {
	tr := NewClient(brokers, d).Transport.(*kafka.Transport)
	return &DeadLetterWriter{
		w: &kafka.Writer{
			Addr:                   kafka.TCP(brokers...),
			Topic:                  topic,
			Balancer:               &kafka.Hash{},
			RequiredAcks:           kafka.RequireAll,
			BatchTimeout:           5 * time.Millisecond,
			BatchSize:              1000,
			BatchBytes:             1_000_000,
			AllowAutoTopicCreation: true,
			Transport:              tr,
		},
		topic: topic,
		log:   log,
	}
}

// Write writes the records once; it returns nil when every record is
// stored (or skipped as too large, see below), else the error.
func (w *DeadLetterWriter) Write(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(dls))
	for i, d := range dls {
		value, orig := d.Value, d.Truncated
		if len(value) > MaxDeadLetterValue {
			value, orig = value[:MaxDeadLetterValue], len(value)
		}
		var extra []kafka.Header
		if orig > 0 {
			extra = append(extra, kafka.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(orig))})
		}
		msgs[i] = kafka.Message{
			Key:   []byte(d.Topic + "/" + strconv.Itoa(d.Partition)),
			Value: value,
			Time:  d.Time,
			Headers: []kafka.Header{
				{Key: HeaderReason, Value: []byte(d.Reason)},
				{Key: HeaderError, Value: []byte(d.Err)},
				{Key: HeaderTopic, Value: []byte(d.Topic)},
				{Key: HeaderPartition, Value: []byte(strconv.Itoa(d.Partition))},
				{Key: HeaderOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
			},
		}
		msgs[i].Headers = append(msgs[i].Headers, extra...)
	}
	// A record the topic refuses as too large (its max.message.bytes is
	// below the record's size) is cut further and tried again, down to its
	// headers alone; one still refused is counted and skipped with a log
	// line, never retried for ever. Any other failure is returned, for the
	// caller to retry with backoff.
	limit := MaxDeadLetterValue
	for {
		err := w.w.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		var we kafka.WriteErrors
		if !errors.As(err, &we) || len(we) != len(msgs) {
			return SummarizeWriteError(err)
		}
		var retry []kafka.Message
		for k, e := range we {
			switch {
			case e == nil:
			case errors.Is(e, kafka.MessageSizeTooLarge):
				retry = append(retry, msgs[k])
			default:
				return SummarizeWriteError(err)
			}
		}
		if limit == 0 {
			for _, m := range retry {
				w.log.Error("the dead-letter topic refuses a record even without its value (max.message.bytes?); skipping it",
					"topic", w.topic, "record_key", string(m.Key), "reason", header(m, HeaderReason), "offset", header(m, HeaderOffset))
			}
			if w.OnSkipped != nil {
				w.OnSkipped(len(retry))
			}
			return nil
		}
		limit /= 8
		if limit < 64 {
			limit = 0
		}
		for k := range retry {
			m := &retry[k]
			if len(m.Value) > limit {
				orig := len(m.Value)
				if t := header(*m, HeaderTruncated); t != "" {
					orig, _ = strconv.Atoi(t)
				}
				m.Value = m.Value[:limit]
				m.Headers = setHeader(m.Headers, HeaderTruncated, strconv.Itoa(orig))
			}
			if e := header(*m, HeaderError); len(e) > 256 {
				m.Headers = setHeader(m.Headers, HeaderError, e[:256])
			}
		}
		w.log.Warn("the dead-letter topic refuses records as too large; cutting their values", "topic", w.topic, "records", len(retry), "value_bytes", limit)
		msgs = retry
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func setHeader(hs []kafka.Header, key, value string) []kafka.Header {
	for i := range hs {
		if hs[i].Key == key {
			hs[i].Value = []byte(value)
			return hs
		}
	}
	return append(hs, kafka.Header{Key: key, Value: []byte(value)})
}

// Close flushes and closes the writer.
func (w *DeadLetterWriter) Close() error { return w.w.Close() }

// IsTemporary reports whether a Kafka error is worth retrying.
func IsTemporary(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// SummarizeWriteError shortens kafka-go's per-message write errors to a
// count and the first error, so one failed batch is one readable line.
func SummarizeWriteError(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	var first error
	n := 0
	for _, e := range we {
		if e != nil {
			if first == nil {
				first = e
			}
			n++
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("%d of %d messages failed, first: %w", n, len(we), first)
}

// ReadDeadLetters reads every record of a dead-letter topic up to its
// current end (for tests, the demo and operators' tools).
func ReadDeadLetters(ctx context.Context, brokers []string, d *kafka.Dialer, topic string) ([]DeadLetter, error) {
	ends, err := EndOffsets(ctx, NewClient(brokers, d), topic)
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	for part, end := range ends {
		if end <= 0 {
			continue
		}
		r, err := NewPartitionReader(brokers, d, topic, part, kafka.FirstOffset, 1<<20, 100*time.Millisecond)
		if err != nil {
			return nil, err
		}
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("read %s/%d: %w", topic, part, err)
			}
			dl := DeadLetter{Value: m.Value, Time: m.Time, Offset: -1}
			for _, h := range m.Headers {
				v := string(h.Value)
				switch h.Key {
				case HeaderReason:
					dl.Reason = Reason(v)
				case HeaderError:
					dl.Err = v
				case HeaderTopic:
					dl.Topic = v
				case HeaderPartition:
					dl.Partition, _ = strconv.Atoi(v)
				case HeaderOffset:
					dl.Offset, _ = strconv.ParseInt(v, 10, 64)
				case HeaderTruncated:
					dl.Truncated, _ = strconv.Atoi(v)
				}
			}
			out = append(out, dl)
			if m.Offset+1 >= end {
				break
			}
		}
		r.Close()
	}
	return out, nil
}
