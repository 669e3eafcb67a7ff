package ingest_test

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// TestDeadLettersTooLarge: a dead-letter topic whose max.message.bytes is
// below a record's size gets the record cut down until it fits, or, if even
// its headers do not, the record is skipped and counted: never a retry for
// ever (issue 13, item 5).
func TestDeadLettersTooLarge(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	b := testenv.StartBroker(t, broker.Options{Partitions: 1})
	cfg := config.Default().Kafka
	cfg.Brokers = []string{b.Addr()}
	d, _ := ingest.NewDialer(cfg)
	create := func(topic string, maxBytes string) {
		c := ingest.NewClient(cfg.Brokers, d)
		resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: topic, NumPartitions: 1, ReplicationFactor: -1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: maxBytes}},
		}}})
		if err != nil || resp.Errors[topic] != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Errors[topic])
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	big := bytes.Repeat([]byte("x"), 60_000)

	create("dl-small", "2000")
	w := ingest.NewDeadLetterWriter(cfg.Brokers, d, "dl-small", log)
	defer w.Close()
	skipped := 0
	w.OnSkipped = func(n int) { skipped += n }
	if err := w.Write(ctx, []ingest.DeadLetter{{Value: big, Reason: ingest.ReasonSyntax, Err: "bad", Topic: "in", Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	dls, err := ingest.ReadDeadLetters(ctx, cfg.Brokers, d, "dl-small")
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || len(dls[0].Value) >= 2000 || dls[0].Truncated != len(big) || dls[0].Offset != 7 || skipped != 0 {
		t.Fatalf("read back %d records, value %d bytes, truncated %d, skipped %d", len(dls), len(dls[0].Value), dls[0].Truncated, skipped)
	}

	create("dl-tiny", "40")
	w2 := ingest.NewDeadLetterWriter(cfg.Brokers, d, "dl-tiny", log)
	defer w2.Close()
	w2.OnSkipped = func(n int) { skipped += n }
	if err := w2.Write(ctx, []ingest.DeadLetter{{Value: big, Reason: ingest.ReasonSyntax, Err: "bad", Topic: "in", Offset: 8}}); err != nil {
		t.Fatal(err)
	}
	if skipped != 1 {
		t.Fatalf("skipped %d records, want 1", skipped)
	}
}
