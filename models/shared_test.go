package models

import (
	"bytes"
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/windowing"
)

// ettPartition windows ETTh1's rows [from, to) under a series key prefix,
// as one partition would see them.
func ettPartition(t testing.TB, prefix string, from, to, length, batch int) []arrow.RecordBatch {
	t.Helper()
	fr, err := dataset.ReadCSV("../data/ETT/ETTh1.csv", dataset.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []arrow.RecordBatch
	w := windowing.New(windowing.Config{Length: length, Stride: 1, MinObserved: 0.01, BatchSize: batch, MaxSeries: 64, Interval: 3600e9},
		memory.DefaultAllocator, func(r arrow.RecordBatch) { recs = append(recs, r) })
	defer w.Close()
	for i := from; i < to; i++ {
		for c, n := range fr.Names {
			w.Add([]byte(prefix+"#"+n), fr.Time[i], fr.Cols[c][i])
		}
	}
	w.Flush()
	t.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return recs
}

func sharedConfig(part string, sync EncoderSync) SSLConfig {
	cfg := testSSLConfig(24)
	cfg.Epoch = 24 * 3600e9 // a day of hourly windows per encoder round
	cfg.Sync, cfg.Partition = sync, part
	return cfg
}

type embRow struct {
	key     string
	end     int64
	version int64
	emb     []float64
}

// runShared steps l through recs and collects every emitted embedding.
func runShared(ctx context.Context, l *SSL, recs []arrow.RecordBatch) ([]embRow, error) {
	var out []embRow
	for _, r := range recs {
		o, err := l.StepContext(ctx, r)
		if err != nil {
			return nil, err
		}
		b, _ := View(r)
		for i := 0; i < b.Rows; i++ {
			if o.EmitEmbedding[i] {
				out = append(out, embRow{b.Key(i), int64(b.End[i]), o.Version[i], append([]float64(nil), o.Embedding[i*o.Dim:(i+1)*o.Dim]...)})
			}
		}
		out = appendLate(out, o)
	}
	return out, nil
}

func appendLate(out []embRow, o *Output) []embRow {
	if o == nil {
		return out
	}
	for _, e := range o.Late {
		out = append(out, embRow{e.Key, e.End, e.Version, e.Embedding})
	}
	return out
}

// idleRows is Idle, collecting what it caught up on.
func idleRows(ctx context.Context, l *SSL, rows []embRow) ([]embRow, error) {
	o, err := l.Idle(ctx)
	return appendLate(rows, o), err
}

// sortRows orders embeddings by series and time (deferred ones come late).
func sortRows(rows []embRow) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].key != rows[j].key {
			return rows[i].key < rows[j].key
		}
		return rows[i].end < rows[j].end
	})
}

// TestSharedEncoderOneSpace: two partitions that see the same data under
// different series keys (and a third that sees other rows) embed it with
// the same encoder versions, so identical windows get identical
// embeddings; versions move with event time and are merges of every
// partition's learning.
func TestSharedEncoderOneSpace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	init, err := InitialEncoder(sharedConfig("", nil))
	if err != nil {
		t.Fatal(err)
	}
	g := NewGroupSync(&MemLog{}, []string{"t/0", "t/1", "t/2"}, init, MergeRule{Rate: 1})
	g.Keep = 1 << 20 // keep every version, to compare the first and the last
	data := map[string][]arrow.RecordBatch{
		"t/0": ettPartition(t, "ett,copy=a", 0, 400, 24, 50),
		"t/1": ettPartition(t, "ett,copy=b", 0, 400, 24, 70),
		"t/2": ettPartition(t, "ett,other=c", 2000, 2400, 24, 30),
	}
	res := map[string][]embRow{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for part, recs := range data {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := NewSSL(sharedConfig(part, g))
			if err != nil {
				errs <- err
				return
			}
			rows, err := runShared(ctx, l, recs)
			if err != nil {
				errs <- err
				cancel()
				return
			}
			// The end of its data: the partition catches up on what
			// waited for the group and goes idle, so that none waits for
			// it.
			if rows, err = idleRows(ctx, l, rows); err != nil {
				errs <- err
				cancel()
				return
			}
			sortRows(rows)
			mu.Lock()
			res[part] = rows
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a, b := res["t/0"], res["t/1"]
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d and %d embeddings", len(a), len(b))
	}
	versions := map[int64]bool{}
	for i := range a {
		if a[i].end != b[i].end || a[i].version != b[i].version {
			t.Fatalf("row %d: %v/%v against %v/%v", i, a[i].end, a[i].version, b[i].end, b[i].version)
		}
		if strings.TrimPrefix(a[i].key, "ett,copy=a") != strings.TrimPrefix(b[i].key, "ett,copy=b") {
			t.Fatalf("row %d: %s against %s", i, a[i].key, b[i].key)
		}
		for d := range a[i].emb {
			if math.Float64bits(a[i].emb[d]) != math.Float64bits(b[i].emb[d]) {
				t.Fatalf("row %d (%s, version %d): embeddings differ", i, a[i].key, a[i].version)
			}
		}
		versions[a[i].version] = true
	}
	if len(versions) < 10 {
		t.Fatalf("%d encoder versions over 400 hourly rows with daily epochs", len(versions))
	}
	// The versions changed the weights: the encoder learnt.
	v0, err := g.Version(ctx, a[0].version)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := g.Version(ctx, a[len(a)-1].version)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range v0 {
		same = same && v0[i] == v1[i]
	}
	if same {
		t.Fatal("the encoder's weights never changed")
	}
}

// TestSharedEncoderRestart: a partition that goes idle and resumes, and
// crashes after that, restored from a checkpoint made before it went idle
// (with the group's log, idle and resume records included), writes exactly
// what the uninterrupted one does — also when the group no longer keeps
// the checkpoint's versions in memory and reads them back from the log.
func TestSharedEncoderRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	init, err := InitialEncoder(sharedConfig("", nil))
	if err != nil {
		t.Fatal(err)
	}
	recs := ettPartition(t, "ett,p=0", 0, 300, 24, 40)
	run := func(cut bool, keep int64) ([]embRow, []byte) {
		log := &MemLog{}
		g := NewGroupSync(log, []string{"t/0", "t/1"}, init, MergeRule{Rate: 1})
		g.Keep = keep
		// t/1 has no data: it goes idle whenever the frontier moves.
		idle, err := NewSSL(sharedConfig("t/1", g))
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		close(done)
		if _, err := idle.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { close(stop); <-done }()
		l, err := NewSSL(sharedConfig("t/0", g))
		if err != nil {
			t.Fatal(err)
		}
		// The stream: a third of the windows, a quiet spell (the idle
		// rule fires), the rest (the partition resumes).
		third := len(recs) / 3
		if !cut {
			rows, err := runShared(ctx, l, recs[:third])
			if err != nil {
				t.Fatal(err)
			}
			if rows, err = idleRows(ctx, l, rows); err != nil {
				t.Fatal(err)
			}
			more, err := runShared(ctx, l, recs[third:])
			if err != nil {
				t.Fatal(err)
			}
			all, err := idleRows(ctx, l, append(rows, more...))
			if err != nil {
				t.Fatal(err)
			}
			sortRows(all)
			return all, state(l)
		}
		// Checkpoint before the quiet spell; crash after it, well into
		// the rest; restart from the checkpoint: the idle and resume
		// records in the log are repeated at the same windows.
		rows, err := runShared(ctx, l, recs[:third/2])
		if err != nil {
			t.Fatal(err)
		}
		saved := state(l)
		if _, err := runShared(ctx, l, recs[third/2:third]); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := runShared(ctx, l, recs[third:2*third]); err != nil {
			t.Fatal(err)
		}
		r, err := NewSSL(sharedConfig("t/0", g))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.LoadState(binenc.NewReader(saved)); err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		oldest := g.snapEpoch
		g.mu.Unlock()
		if keep == 1 && r.version >= oldest {
			t.Fatalf("the checkpoint's version %d is still kept (oldest %d): the log is not read back", r.version, oldest)
		}
		more, err := runShared(ctx, r, recs[third/2:])
		if err != nil {
			t.Fatal(err)
		}
		all, err := idleRows(ctx, r, append(rows, more...))
		if err != nil {
			t.Fatal(err)
		}
		sortRows(all)
		return all, state(r)
	}
	a, sa := run(false, 0)
	for _, keep := range []int64{0, 1} {
		b, sb := run(true, keep)
		if len(a) != len(b) {
			t.Fatalf("keep %d: %d against %d embeddings", keep, len(a), len(b))
		}
		for i := range a {
			if a[i].version != b[i].version {
				t.Fatalf("keep %d: row %d: version %d against %d", keep, i, a[i].version, b[i].version)
			}
			for d := range a[i].emb {
				if math.Float64bits(a[i].emb[d]) != math.Float64bits(b[i].emb[d]) {
					t.Fatalf("keep %d: row %d: embeddings differ after the restart", keep, i)
				}
			}
		}
		if !bytes.Equal(sa, sb) {
			t.Fatalf("keep %d: the restarted learner's state differs from the uninterrupted one's", keep)
		}
	}
}

func TestCloseRecordRoundTrip(t *testing.T) {
	c := Close{Partition: "metrics/3", Epoch: 20000, Through: 20002, Windows: 17, AtWindow: 12345, Idle: true, Delta: []float64{1.5, -2, 3e-7}}
	got, err := DecodeClose(EncodeClose(c))
	if err != nil {
		t.Fatal(err)
	}
	if got.Partition != c.Partition || got.Epoch != c.Epoch || got.Through != c.Through || got.Windows != c.Windows ||
		got.AtWindow != c.AtWindow || !got.Idle || len(got.Delta) != 3 || got.Delta[0] != 1.5 || got.Delta[2] != float64(float32(3e-7)) {
		t.Fatalf("round trip: %+v", got)
	}
	c.Delta = nil
	if got, _ := DecodeClose(EncodeClose(c)); got.Delta != nil {
		t.Fatal("a close without a delta got one")
	}
	for n := 0; n < len(EncodeClose(c)); n++ {
		if _, err := DecodeClose(EncodeClose(c)[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: decoded", n)
		}
	}
}

// TestMergeRule: the mean merge adds the partitions' deltas weighted by
// their share of the epoch's training windows, the sum that times the
// number of contributors, both scaled by Rate; an epoch's partition order
// does not matter; and the mean splits train_batch over the partitions.
func TestMergeRule(t *testing.T) {
	m := map[string]Close{
		"t/1": {Partition: "t/1", Windows: 30, Delta: []float64{1, 0}},
		"t/0": {Partition: "t/0", Windows: 10, Delta: []float64{0, 4}},
		"t/2": {Partition: "t/2", Windows: 0, Delta: []float64{100, 100}}, // learnt nothing: no weight
	}
	for _, c := range []struct {
		rule MergeRule
		want [2]float64
	}{
		{MergeRule{Rate: 1}, [2]float64{30.0 / 40, 4 * 10.0 / 40}},
		{MergeRule{Rate: 0.5}, [2]float64{0.5 * 30 / 40, 0.5 * 4 * 10 / 40}},
		{MergeRule{Sum: true, Rate: 1}, [2]float64{3 * 30.0 / 40, 3 * 4 * 10.0 / 40}},
	} {
		v := []float64{1, 1}
		applyEpoch(v, m, c.rule)
		for i := range v {
			if math.Abs(v[i]-1-c.want[i]) > 1e-12 {
				t.Errorf("%+v: component %d moved %v, want %v", c.rule, i, v[i]-1, c.want[i])
			}
		}
	}
	v := []float64{1, 1}
	applyEpoch(v, map[string]Close{"t/0": {Delta: []float64{5, 5}}}, MergeRule{Rate: 1})
	if v[0] != 1 || v[1] != 1 {
		t.Errorf("an epoch without training windows moved the encoder to %v", v)
	}

	for _, c := range []struct {
		rule                    MergeRule
		batch, partitions, want int
	}{
		{MergeRule{Rate: 1}, 128, 1, 128},
		{MergeRule{Rate: 1}, 128, 4, 32},
		{MergeRule{Rate: 1}, 128, 3, 43},
		{MergeRule{Rate: 1}, 128, 64, minPartitionBatch},
		{MergeRule{Rate: 1}, 32, 4, 32},
		{MergeRule{Rate: 1}, 8, 4, 8}, // never above train_batch
		{MergeRule{Sum: true, Rate: 1}, 128, 4, 128},
	} {
		if got := c.rule.PartitionBatch(c.batch, c.partitions); got != c.want {
			t.Errorf("%+v: train_batch %d over %d partitions: a partition steps on %d windows, want %d", c.rule, c.batch, c.partitions, got, c.want)
		}
	}
}

// TestGroupSyncBadDeltaLength: a record whose delta has another number of
// weights than the encoder (the topic written by another shape of the
// model) is reported, and its close counts without its learning, instead
// of indexing past the weights.
func TestGroupSyncBadDeltaLength(t *testing.T) {
	g := NewGroupSync(&MemLog{}, []string{"t/0", "t/1"}, []float64{1, 1}, MergeRule{Rate: 1})
	var bad []int
	g.OnBadDelta = func(c Close, want int) { bad = append(bad, len(c.Delta), want) }
	ctx := context.Background()
	for _, c := range []Close{
		{Partition: "t/0", Epoch: 10, Through: 10, Windows: 4, Delta: []float64{1, 2, 3}},
		{Partition: "t/1", Epoch: 10, Through: 10, Windows: 4, Delta: []float64{2, 2}},
	} {
		if err := g.Publish(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	v, err := g.Version(ctx, 11)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bad, []int{3, 2}) {
		t.Errorf("reported %v, want the 3-weight delta against 2", bad)
	}
	if !slices.Equal(v, []float64{3, 3}) {
		t.Errorf("version 11 = %v, want t/1's delta alone applied: [3 3]", v)
	}
	// Versions read back from the log (a partition restored from an old
	// checkpoint) leave it out the same way.
	p, _, err := g.readPast(ctx, 11, 12)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.v, []float64{3, 3}) {
		t.Errorf("version 11 read back = %v, want [3 3]", p.v)
	}
}
