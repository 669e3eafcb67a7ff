package e2e

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
)

// TestGroupOneSpace (issue 11): two instances, then three, of one group
// over an 8-partition topic, each with a checkpoint directory of its own
// and the partitions' state in Kafka, learn from ETTh1 produced twice under
// two tag sets (so into other partitions, whose learners have seen other
// data before) and ETTh2. Every partition embeds with the group's one
// encoder: each ETTh1 series and its copy get the same embedding in the same
// version, and `tsrep query similar` ranks the copy first.
func TestGroupOneSpace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three instances")
	}
	ctx := testenv.Context(t, 10*time.Minute)
	b := startBroker(t, broker.Options{Partitions: 8})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "ett", "group", db)
	c.Window.Length, c.Window.Stride = 48, 4
	c.Model.Order = 24
	c.Model.EmbedEvery = 6 // an embedding every day of hourly data
	// At the deployed train_every the partitions of this two-year replay
	// race apart by more than the 64 epochs an instance keeps in memory: a
	// partition restored after a rebalance reads its checkpoint's encoder
	// versions back from the encoder topic.
	c.Pipeline.StateStore = "kafka"

	var msgs []feed.Message
	for _, src := range []struct{ file, tag string }{{"ETT/ETTh1.csv", "a"}, {"ETT/ETTh1.csv", "b"}, {"ETT/ETTh2.csv", "c"}} {
		fr, err := dataset.ReadCSV(testenv.DataFile(t, src.file), dataset.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := feed.CSVMessages(fr, "ett", map[string]string{"source": src.tag})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m...)
	}
	d, _ := ingest.NewDialer(c.Kafka)
	if err := feed.Produce(ctx, feed.ProduceOptions{Brokers: c.Kafka.Brokers, Dialer: d, Topic: "ett", Partitions: 8, MaxBatchBytes: maxMessageBytes}, msgs); err != nil {
		t.Fatal(err)
	}
	partOf := func(tag string) int { return ingest.PartitionOf([]byte("ett,source="+tag), 8) }
	t.Logf("copies a and b in partitions %d and %d, ETTh2 in %d", partOf("a"), partOf("b"), partOf("c"))

	// Instances with no directory in common.
	inst := func() string {
		ci := c
		ci.Pipeline.CheckpointDir = t.TempDir()
		return writeConfig(t, ci)
	}
	var procs []*proc
	defer func() {
		if t.Failed() {
			for i, p := range procs {
				t.Logf("instance %d:\n%s", i+1, tail(p.log.String()))
			}
		}
	}()
	i1 := startTsrep(t, nil, "run", "--until-end", "-c", inst())
	i2 := startTsrep(t, nil, "run", "--until-end", "-c", inst())
	procs = append(procs, i1, i2)
	waitFor(t, time.Minute, "two instances to share the 8 partitions", func() bool {
		return lastAssigned(i1)+lastAssigned(i2) == 8 && lastAssigned(i1) > 0 && lastAssigned(i2) > 0
	})
	i3 := startTsrep(t, nil, "run", "--until-end", "-c", inst())
	procs = append(procs, i3)
	waitFor(t, time.Minute, "three instances to share the 8 partitions", func() bool {
		return lastAssigned(i1) > 0 && lastAssigned(i2) > 0 && lastAssigned(i3) > 0 &&
			lastAssigned(i1)+lastAssigned(i2)+lastAssigned(i3) == 8
	})
	for _, p := range []*proc{i1, i2, i3} {
		p.wait(t, 5*time.Minute)
	}

	q, err := query.Open(query.Options{URL: db.URL, Bucket: db.Database, Prefix: c.Influx.MeasurementPrefix})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	fields := []string{"HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"}
	for _, f := range fields {
		target := "ett,source=a#" + f
		e, sim, err := q.SimilarOfVersion(ctx, target, time.Time{}, 3, c.Model.Name, query.NewestVersion)
		if err != nil {
			t.Fatalf("similar %s: %v", target, err)
		}
		if len(sim) == 0 || sim[0].Series != "ett,source=b#"+f || sim[0].Score < 0.999 {
			t.Fatalf("similar to %s within version %d: %+v; want its copy first, cosine >= 0.999", target, e.Version, sim)
		}
		t.Logf("%s: copy first within version %d, cosine %.6f; next %s %.3f", target, e.Version, sim[0].Score, sim[1].Series, sim[1].Score)
	}
	checkCopiesEqual(ctx, t, q, c, fields)
}

// checkCopiesEqual: every embedding of an ETTh1 series and of its copy, at
// the same time, has the same version and the same values.
func checkCopiesEqual(ctx context.Context, t *testing.T, q *query.Client, c config.Config, fields []string) {
	t.Helper()
	n := 0
	for _, f := range fields {
		for _, at := range []time.Time{time.Date(2016, 9, 1, 0, 0, 0, 0, time.UTC), time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), {}} {
			a, err := q.Embedding(ctx, "ett,source=a#"+f, at, c.Model.Name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := q.EmbeddingOfVersion(ctx, "ett,source=b#"+f, at, c.Model.Name, a.Version)
			if err != nil {
				t.Fatal(err)
			}
			if !a.Time.Equal(b.Time) || a.Version != b.Version {
				t.Fatalf("%s at %v: %v v%d against %v v%d", f, at, a.Time, a.Version, b.Time, b.Version)
			}
			for i := range a.Vector {
				if math.Abs(a.Vector[i]-b.Vector[i]) > 1e-9 {
					t.Fatalf("%s at %v (version %d): the copies' embeddings differ", f, a.Time, a.Version)
				}
			}
			n++
		}
	}
	t.Logf("%d embeddings of the two copies compared: equal", n)
}
