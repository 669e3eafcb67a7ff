package repartition

import (
	"bytes"
	"testing"
	"time"

	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/testenv"
)

// TestDetectAndDecide: a sample finds no series in two partitions of a
// topic keyed by series and all of them in an unkeyed one (6 series of 2
// fields from each of 3 agents), and
// kafka.repartition = "auto" decides accordingly, then sticks to
// repartitioning once the group has.
func TestDetectAndDecide(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	b := startBroker(t, 4)
	msgs := agents(3, 6, 200, 0, 5)
	var single []feed.Message
	for _, m := range msgs {
		for _, l := range bytes.Split(m.Value, []byte("\n")) {
			single = append(single, feed.Message{Key: l[:bytes.IndexByte(l, ' ')], Value: l, Time: m.Time})
		}
	}
	decide := func(cfgTopic string, produceUnkeyed bool, mode string) Decision {
		t.Helper()
		cfg := testConfig(t, b, cfgTopic)
		cfg.Kafka.Repartition = mode
		if produceUnkeyed {
			produce(ctx, t, cfg, feed.Batch(single, 5), true)
		} else {
			produce(ctx, t, cfg, single, false)
		}
		c, err := ingest.NewCluster(cfg.Kafka)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decide(ctx, c, cfg, false, testLog(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (%s): repartition=%v: %s", cfgTopic, mode, d.Repartition, d.Why)
		return d
	}
	if d := decide("keyed", false, "auto"); d.Repartition || d.Report == nil || d.Report.Series != 36 || d.Report.Shared != 0 {
		t.Fatalf("keyed input: %+v", d)
	}
	d := decide("unkeyed", true, "auto")
	if !d.Repartition || d.Report.Shared != 36 {
		t.Fatalf("unkeyed input: %+v", d)
	}
	for _, p := range d.Report.Parts {
		if p.Shared != p.Series || p.Series == 0 {
			t.Errorf("partition %d: %d of %d series shared", p.Partition, p.Shared, p.Series)
		}
	}
	if d := decide("keyed-off", false, "off"); d.Repartition || d.Report != nil {
		t.Fatalf("off: %+v", d)
	}
	if d := decide("keyed-always", false, "always"); !d.Repartition {
		t.Fatalf("always: %+v", d)
	}
	// Once the group has repartitioned a keyed topic, auto keeps doing so.
	cfg := testConfig(t, b, "keyed-always")
	runStage(ctx, t, cfg)
	cfg.Kafka.Repartition = "auto"
	c, _ := ingest.NewCluster(cfg.Kafka)
	if d, err := Decide(ctx, c, cfg, false, testLog(t), nil); err != nil || !d.Repartition {
		t.Fatalf("auto after repartitioning: %+v %v", d, err)
	}
}
