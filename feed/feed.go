// Package feed turns data files into line-protocol messages, the form
// tsrep reads from Kafka: a CSV row becomes one point whose fields are the
// row's numeric columns (one series per column) at the row's time, and a
// line-protocol file is taken line by line. Messages are keyed by
// measurement + tag set, so every series stays in one partition, and carry
// the data's own timestamps.
package feed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/ingest"
)

// Message is one Kafka message to produce.
type Message struct {
	Key   []byte
	Value []byte
	// Time is the data's time (Unix ns), used as the message timestamp.
	Time int64
}

// CSVMessages converts a frame into one message per row: measurement (with
// tags) and the row's non-missing columns as fields. Rows with no value are
// skipped.
func CSVMessages(fr *dataset.Frame, measurement string, tags map[string]string) ([]Message, error) {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var enc lineprotocol.Encoder
	enc.SetPrecision(lineprotocol.Nanosecond)
	p := ingest.Point{Measurement: []byte(measurement)}
	for _, k := range keys {
		p.Tags = append(p.Tags, ingest.Tag{Key: []byte(k), Value: []byte(tags[k])})
	}
	key := ingest.AppendSeriesPrefix(nil, &p)
	out := make([]Message, 0, fr.Rows())
	for r := 0; r < fr.Rows(); r++ {
		enc.Reset()
		enc.StartLine(measurement)
		for _, k := range keys {
			enc.AddTag(k, tags[k])
		}
		n := 0
		for c, name := range fr.Names {
			v := fr.Cols[c][r]
			if math.IsNaN(v) {
				continue
			}
			fv, _ := lineprotocol.FloatValue(v)
			enc.AddField(name, fv)
			n++
		}
		if n == 0 {
			continue
		}
		enc.EndLine(time.Unix(0, fr.Time[r]))
		if err := enc.Err(); err != nil {
			return nil, fmt.Errorf("row %d: %w", r+1, err)
		}
		out = append(out, Message{Key: key, Value: bytes.Clone(bytes.TrimSuffix(enc.Bytes(), []byte("\n"))), Time: fr.Time[r]})
	}
	return out, nil
}

// LineProtocolMessages reads a line-protocol file, one message per line,
// keyed by the line's measurement + tag set. Lines that do not decode are
// kept as they are (unkeyed, timestamped now): producing a file should not
// hide its bad lines from the pipeline's dead-letter handling. precision is
// the unit of the file's timestamps in nanoseconds.
func LineProtocolMessages(r io.Reader, precision int64, now time.Time) ([]Message, error) {
	dec := ingest.NewLineProtocol(ingest.Options{Precision: precision})
	var out []Message
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	h := &keyer{}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		h.ok = false
		dec.Decode(line, now.UnixNano(), h)
		m := Message{Value: bytes.Clone(line), Time: now.UnixNano()}
		if h.ok {
			m.Key, m.Time = bytes.Clone(h.key), h.t
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

type keyer struct {
	key []byte
	t   int64
	ok  bool
}

func (k *keyer) Point(p *ingest.Point) {
	k.key = ingest.AppendSeriesPrefix(k.key[:0], p)
	k.t, k.ok = p.Time, true
}

func (k *keyer) Bad([]byte, ingest.Reason, error) {}

// ReadFile reads a data file into messages, by extension: .csv, Arrow IPC
// (.arrow, .ipc, .feather), Parquet (.parquet), anything else line
// protocol. For tables (a time column and numeric columns), measurement and
// tags name the points and o finds the time column.
func ReadFile(path, measurement string, tags map[string]string, o dataset.CSVOptions, precision int64) ([]Message, error) {
	var read func(string, dataset.CSVOptions) (*dataset.Frame, error)
	switch strings.ToLower(strings.TrimPrefix(extOf(path), ".")) {
	case "csv":
		read = dataset.ReadCSV
	case "arrow", "ipc", "feather", "arrows":
		read = dataset.ReadArrow
	case "parquet", "pq":
		read = dataset.ReadParquet
	}
	if read != nil {
		fr, err := read(path, o)
		if err != nil {
			return nil, err
		}
		return CSVMessages(fr, measurement, tags)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return LineProtocolMessages(f, precision, time.Now())
}

func extOf(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[i:]
	}
	return ""
}

// ProduceOptions configure Produce.
type ProduceOptions struct {
	Brokers []string
	Dialer  *kafka.Dialer
	Topic   string
	// Partitions is used when the topic has to be created.
	Partitions int
	// Progress, if set, is called after each chunk with the messages sent.
	Progress func(sent int)
	// MaxBatchBytes bounds a produce request's record batch; it must not
	// exceed the brokers' message.max.bytes (default 1,000,000, which fits
	// Kafka's default of 1,048,588). Larger messages need both raised.
	MaxBatchBytes int
	// Unkeyed drops the messages' keys and spreads them over the
	// partitions round robin, in order, as Telegraf's Kafka output does
	// without routing_tag or routing_key: every series ends up in every
	// partition.
	Unkeyed bool
}

// Produce writes msgs to the topic in order (per key, order is kept within
// a partition), creating the topic if it does not exist. It returns once
// the brokers have every message (acks=all).
func Produce(ctx context.Context, o ProduceOptions, msgs []Message) error {
	if err := EnsureTopic(ctx, o.Brokers, o.Dialer, o.Topic, o.Partitions); err != nil {
		return err
	}
	tr := ingest.NewClient(o.Brokers, o.Dialer).Transport
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 1_000_000
	}
	var balancer kafka.Balancer = &kafka.Hash{}
	if o.Unkeyed {
		balancer = &kafka.RoundRobin{}
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(o.Brokers...),
		Topic:        o.Topic,
		Balancer:     balancer,
		RequiredAcks: kafka.RequireAll,
		BatchSize:    5000,
		BatchBytes:   int64(o.MaxBatchBytes),
		BatchTimeout: 5 * time.Millisecond,
		Transport:    tr,
	}
	defer w.Close()
	const chunk = 5000
	km := make([]kafka.Message, 0, chunk)
	for i := 0; i < len(msgs); i += chunk {
		km = km[:0]
		for _, m := range msgs[i:min(i+chunk, len(msgs))] {
			key := m.Key
			if o.Unkeyed {
				key = nil
			}
			km = append(km, kafka.Message{Key: key, Value: m.Value, Time: time.Unix(0, m.Time)})
		}
		if err := w.WriteMessages(ctx, km...); err != nil {
			return fmt.Errorf("produce to %s: %w", o.Topic, ingest.SummarizeWriteError(err))
		}
		if o.Progress != nil {
			o.Progress(min(i+chunk, len(msgs)))
		}
	}
	return nil
}

// EnsureTopic creates topic with the given partition count if it does not
// exist. Topics created here keep their records forever (retention.ms=-1):
// they hold historical timestamps, which time-based retention would delete
// at once on a real cluster.
func EnsureTopic(ctx context.Context, brokers []string, d *kafka.Dialer, topic string, partitions int) error {
	if partitions < 1 {
		partitions = 1
	}
	c := ingest.NewClient(brokers, d)
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
		return nil
	}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: -1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "-1"}},
	}}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// Batch joins every n consecutive messages into one message of several
// lines (so of several series), without a key, timed as its last: what a
// producer that batches points, whatever their series, writes.
func Batch(msgs []Message, n int) []Message {
	if n < 1 {
		n = 1
	}
	out := make([]Message, 0, (len(msgs)+n-1)/n)
	for i := 0; i < len(msgs); i += n {
		group := msgs[i:min(i+n, len(msgs))]
		var v []byte
		for j, m := range group {
			if j > 0 {
				v = append(v, '\n')
			}
			v = append(v, m.Value...)
		}
		out = append(out, Message{Value: v, Time: group[len(group)-1].Time})
	}
	return out
}

// Between returns the messages with a time in [from, to); zero bounds are
// open.
func Between(msgs []Message, from, to time.Time) []Message {
	if from.IsZero() && to.IsZero() {
		return msgs
	}
	var out []Message
	for _, m := range msgs {
		if (!from.IsZero() && m.Time < from.UnixNano()) || (!to.IsZero() && m.Time >= to.UnixNano()) {
			continue
		}
		out = append(out, m)
	}
	return out
}
