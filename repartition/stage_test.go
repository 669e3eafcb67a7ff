package repartition

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(b)))
	return len(b), nil
}

// testConfig is a configuration for a stage on broker b reading topic.
func testConfig(t *testing.T, b *broker.Broker, topic string) config.Config {
	t.Helper()
	c := config.Default()
	c.Kafka.Brokers = []string{b.Addr()}
	c.Kafka.Topics = []string{topic}
	c.Kafka.Group = "g-" + topic
	c.Kafka.DeadLetterTopic = topic + "-dlq"
	c.Kafka.SessionTimeout = config.Duration{Duration: 2 * time.Second}
	c.Kafka.FetchMaxWait = config.Duration{Duration: 50 * time.Millisecond}
	c.Kafka.Repartition = "always"
	c.Kafka.RepartitionIdle = config.Duration{Duration: 500 * time.Millisecond}
	c.Pipeline.ShutdownTimeout = config.Duration{Duration: 10 * time.Second}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func startBroker(t *testing.T, partitions int) *broker.Broker {
	return testenv.StartBroker(t, broker.Options{Partitions: partitions, Extra: []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}})
}

// runStage runs the stage on cfg to the end of its input.
func runStage(ctx context.Context, t *testing.T, cfg config.Config) {
	t.Helper()
	c, err := ingest.NewCluster(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Options{Config: cfg, Cluster: c, Log: testLog(t), UntilEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// point is a decoded point of a topic, where it was read.
type point struct {
	key  string // measurement + tag set
	line string
	t    int64
	part int
	off  int64
}

type collector struct {
	out  []point
	part int
	off  int64
	key  []byte
	enc  []byte
}

func (c *collector) Point(p *ingest.Point) {
	c.key = ingest.AppendSeriesPrefix(c.key[:0], p)
	c.enc = c.enc[:0]
	for _, f := range p.Fields {
		c.enc = append(c.enc, f.Key...)
		c.enc = append(c.enc, '=')
		c.enc = strconv.AppendFloat(c.enc, f.Value, 'g', -1, 64)
		c.enc = append(c.enc, ' ')
	}
	c.out = append(c.out, point{key: string(c.key), line: string(c.key) + " " + string(c.enc) + strconv.FormatInt(p.Time, 10), t: p.Time, part: c.part, off: c.off})
}

func (c *collector) Bad(raw []byte, r ingest.Reason, err error) {}

// readTopic decodes every point of topic, partition by partition, in
// offset order.
func readTopic(ctx context.Context, t *testing.T, cfg config.Config, topic string) []point {
	t.Helper()
	c, err := ingest.NewCluster(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := c.Ends(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	dec := ingest.NewLineProtocol(ingest.Options{Precision: 1})
	col := &collector{}
	for p := 0; p < len(ends); p++ {
		col.part = p
		if err := c.Scan(ctx, topic, p, 0, ends[p], 0, func(r *ingest.ScannedRecord) bool {
			col.off = r.Offset
			dec.Decode(r.Value, r.Time.UnixNano(), col)
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return col.out
}

// disorder is the largest lateness of a point behind the newest point
// before it in its group (by part when byPart, else by series).
func disorder(pts []point, byPart bool) time.Duration {
	newest := map[string]int64{}
	var worst int64
	for _, p := range pts {
		g := p.key
		if byPart {
			g = strconv.Itoa(p.part)
		}
		n, ok := newest[g]
		if ok && n-p.t > worst {
			worst = n - p.t
		}
		if !ok || p.t > n {
			newest[g] = p.t
		}
	}
	return time.Duration(worst)
}

// agents produces what Telegraf agents without routing_tag write: each
// agent's messages hold one point of each of its series at one time step,
// and agents run at their own pace, at most maxLag steps apart.
func agents(n, seriesPerAgent, steps, maxLag int, seed uint64) []feed.Message {
	rng := rand.New(rand.NewPCG(seed, 1))
	t0 := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	at := make([]int, n)
	var out []feed.Message
	for {
		lo := math.MaxInt
		for _, c := range at {
			lo = min(lo, c)
		}
		if lo >= steps {
			return out
		}
		var ready []int
		for a, c := range at {
			if c < steps && c <= lo+maxLag {
				ready = append(ready, a)
			}
		}
		a := ready[rng.IntN(len(ready))]
		ts := t0 + int64(at[a])*int64(10*time.Second)
		var v []byte
		for s := 0; s < seriesPerAgent; s++ {
			if s > 0 {
				v = append(v, '\n')
			}
			v = fmt.Appendf(v, "cpu,cpu=c%d,host=h%d usage=%g,idle=%g %d", s, a, float64(at[a]*7+s)/3, float64(s), ts) // tags sorted: the line's prefix is its series key
		}
		out = append(out, feed.Message{Value: v, Time: ts})
		at[a]++
	}
}

func produce(ctx context.Context, t *testing.T, cfg config.Config, msgs []feed.Message, unkeyed bool) {
	t.Helper()
	d, _ := ingest.NewDialer(cfg.Kafka)
	if err := feed.Produce(ctx, feed.ProduceOptions{Brokers: cfg.Kafka.Brokers, Dialer: d, Topic: cfg.Kafka.Topics[0], Partitions: 4, Unkeyed: unkeyed}, msgs); err != nil {
		t.Fatal(err)
	}
}

// checkRepartitioned checks that the internal topic holds every input
// point once, each series in the partition its key hashes to, and returns
// the largest reorder of a series' event times.
func checkRepartitioned(t *testing.T, in, out []point, parts int) time.Duration {
	t.Helper()
	want := make([]string, len(in))
	for i, p := range in {
		want[i] = p.line
	}
	got := make([]string, len(out))
	for i, p := range out {
		got[i] = p.line
		if q := ingest.PartitionOf([]byte(p.key), parts); q != p.part {
			t.Fatalf("series %s in internal partition %d, its key hashes to %d", p.key, p.part, q)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		missing, extra := diff(want, got)
		t.Fatalf("internal topic: %d points, input %d: %d missing (first %v), %d extra (first %v)", len(got), len(want), len(missing), head(missing), len(extra), head(extra))
	}
	return disorder(out, false)
}

func diff(want, got []string) (missing, extra []string) {
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || i < len(want) && want[i] < got[j]:
			missing = append(missing, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	return missing, extra
}

func head(s []string) []string { return s[:min(3, len(s))] }

// TestOrderAfterRepartition measures what the issue asks: the largest
// reorder of event times within a series after repartitioning, for
// producers that write several series per message, unkeyed (round robin
// over 4 partitions), at paces up to maxLag steps apart. Every point must
// arrive once, in its series' partition, and no series may be reordered
// by more than the input's own disorder within a partition (0 when the
// agents keep step).
func TestOrderAfterRepartition(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	b := startBroker(t, 4)
	for _, tc := range []struct {
		name   string
		maxLag int
	}{{"lockstep", 0}, {"lag3", 3}, {"lag20", 20}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, b, "order-"+tc.name)
			msgs := agents(5, 8, 400, tc.maxLag, uint64(tc.maxLag)+1)
			produce(ctx, t, cfg, msgs, true)
			in := readTopic(ctx, t, cfg, cfg.Kafka.Topics[0])
			inPart := disorder(in, true)
			inSeries := disorder(in, false) // what a reader of the input sees
			runStage(ctx, t, cfg)
			out := readTopic(ctx, t, cfg, cfg.RepartitionTopic())
			reorder := checkRepartitioned(t, in, out, 4)
			t.Logf("%d points in %d messages from 5 agents up to %d steps (10s) apart: input disorder within a partition %s; "+
				"a series read across the input partitions in turn: %s; after repartitioning, within a series: %s",
				len(in), len(msgs), tc.maxLag, inPart, inSeries, reorder)
			if reorder > inPart {
				t.Errorf("a series is reordered by %s after repartitioning, more than the input's disorder within a partition (%s)", reorder, inPart)
			}
			if tc.maxLag == 0 && reorder != 0 {
				t.Errorf("in-order input reordered by %s", reorder)
			}
		})
	}
}

// TestSameOrderAsKeyed: the same data produced keyed by series and
// produced unkeyed (round robin, several series per message) gives, after
// repartitioning the unkeyed topic, the keyed topic's partitions point
// for point, in the same order.
func TestSameOrderAsKeyed(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	b := startBroker(t, 4)
	msgs := agents(3, 6, 300, 0, 9)
	var single []feed.Message // one point per message, keyed, in (time, key) order
	for _, m := range msgs {
		for _, l := range bytes.Split(m.Value, []byte("\n")) {
			k := l[:bytes.IndexByte(l, ' ')]
			single = append(single, feed.Message{Key: bytes.Clone(k), Value: bytes.Clone(l), Time: m.Time})
		}
	}
	slices.SortStableFunc(single, func(a, b feed.Message) int {
		if a.Time != b.Time {
			return int(a.Time - b.Time)
		}
		return bytes.Compare(a.Key, b.Key)
	})
	keyed := testConfig(t, b, "keyed")
	produce(ctx, t, keyed, single, false)
	want := readTopic(ctx, t, keyed, "keyed")

	cfg := testConfig(t, b, "unkeyed")
	produce(ctx, t, cfg, feed.Batch(single, 7), true)
	runStage(ctx, t, cfg)
	got := readTopic(ctx, t, cfg, cfg.RepartitionTopic())
	if len(got) != len(want) {
		t.Fatalf("%d points repartitioned, %d keyed", len(got), len(want))
	}
	for i := range want {
		if want[i].line != got[i].line || want[i].part != got[i].part {
			t.Fatalf("point %d: keyed %s in partition %d, repartitioned %s in partition %d", i, want[i].line, want[i].part, got[i].line, got[i].part)
		}
	}
	t.Logf("%d points in the same partitions and order", len(got))
}

// TestExactlyOnceAcrossRestarts runs the stage three times over an input
// produced in three parts: the first run never commits (as if killed
// before every commit), the second commits twice and then no more, the
// third runs to the end. The internal topic must hold what one clean run writes, point for
// point and in the same order in every partition: the points written
// after the last commit are found and not written again, and a message
// whose points were partly written (its points span two timestamps) is
// resumed where it was.
func TestExactlyOnceAcrossRestarts(t *testing.T) {
	ctx := testenv.Context(t, 3*time.Minute)
	b := startBroker(t, 4)
	msgs := agents(4, 5, 1500, 0, 3)
	var single []feed.Message
	for _, m := range msgs {
		for _, l := range bytes.Split(m.Value, []byte("\n")) {
			single = append(single, feed.Message{Value: bytes.Clone(l), Time: m.Time})
		}
	}
	batched := feed.Batch(single, 7) // messages that span two timestamps

	clean := testConfig(t, b, "clean")
	produce(ctx, t, clean, batched, true)
	runStage(ctx, t, clean)
	want := readTopic(ctx, t, clean, clean.RepartitionTopic())

	cfg := testConfig(t, b, "restarts")
	// Small steps, each committed (or not, as the hook says); parts that
	// end between two timestamps, as the clean run's idle-free order
	// cannot know that a stream paused within one.
	defer func(p int, c time.Duration) { stepPoints, commitEvery = p, c }(stepPoints, commitEvery)
	stepPoints, commitEvery = 300, 0
	third := len(batched) / 3 / 20 * 20 // 20 messages of 7 points: 7 timestamps of 20 points
	produce(ctx, t, cfg, batched[:third], true)
	live := func(d time.Duration, commits int) {
		n := 0
		testHookCommit = func() bool { n++; return n <= commits }
		defer func() { t.Logf("run allowing %d commits: %d commits asked", commits, n) }()
		defer func() { testHookCommit = nil }()
		c, err := ingest.NewCluster(cfg.Kafka)
		if err != nil {
			t.Fatal(err)
		}
		st, err := New(Options{Config: cfg, Cluster: c, Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if err := st.Run(rctx); err != nil {
			t.Fatal(err)
		}
	}
	live(3*time.Second, 0)
	first := len(readTopic(ctx, t, cfg, cfg.RepartitionTopic()))
	produce(ctx, t, cfg, batched[third:2*third], true)
	live(3*time.Second, 2)
	produce(ctx, t, cfg, batched[2*third:], true)
	runStage(ctx, t, cfg)
	got := readTopic(ctx, t, cfg, cfg.RepartitionTopic())
	t.Logf("clean run: %d points; the run that never committed wrote %d; after two more runs: %d", len(want), first, len(got))
	if first == 0 {
		t.Fatal("the first run wrote nothing: nothing was tested")
	}
	if len(got) != len(want) {
		missing, extra := diff(sortedLines(want), sortedLines(got))
		t.Fatalf("%d points after the restarts, %d in a clean run: %d missing (first %v), %d extra (first %v)",
			len(got), len(want), len(missing), head(missing), len(extra), head(extra))
	}
	for i := range want {
		if want[i].line != got[i].line || want[i].part != got[i].part {
			t.Fatalf("point %d: clean run %s in partition %d, after restarts %s in partition %d", i, want[i].line, want[i].part, got[i].line, got[i].part)
		}
	}
}

func sortedLines(pts []point) []string {
	out := make([]string, len(pts))
	for i, p := range pts {
		out[i] = p.line
	}
	slices.Sort(out)
	return out
}
