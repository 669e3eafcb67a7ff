package windowing

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/internal/binenc"
)

// win is one emitted window, decoded from a batch for comparison.
type win struct {
	key  string
	end  int64 // in slots (end time / interval)
	seq  uint64
	vals string // "1 2 _ 4": _ marks a gap
}

func (w win) String() string { return fmt.Sprintf("%s@%d#%d[%s]", w.key, w.end, w.seq, w.vals) }

// collector gathers the windows of every batch and releases the batches.
type collector struct {
	wins    []win
	batches int
	sizes   []int
}

func (c *collector) emit(rec arrow.RecordBatch) {
	defer rec.Release()
	c.batches++
	c.sizes = append(c.sizes, int(rec.NumRows()))
	keys := rec.Column(ColSeries).(*array.Dictionary)
	dict := keys.Dictionary().(*array.String)
	ends := rec.Column(ColEnd).(*array.Timestamp)
	ivl := rec.Column(ColInterval).(*array.Duration)
	seqs := rec.Column(ColSeq).(*array.Uint64)
	vals := rec.Column(ColValues).(*array.FixedSizeList)
	obs := rec.Column(ColObserved).(*array.FixedSizeList)
	vf := vals.ListValues().(*array.Float64)
	ob := obs.ListValues().(*array.Boolean)
	L := vals.DataType().(*arrow.FixedSizeListType).Len()
	for i := 0; i < int(rec.NumRows()); i++ {
		var parts []string
		for j := 0; j < int(L); j++ {
			k := i*int(L) + j
			if !ob.Value(k) {
				if !math.IsNaN(vf.Value(k)) {
					panic("unobserved slot holds a number")
				}
				parts = append(parts, "_")
				continue
			}
			parts = append(parts, fmt.Sprint(vf.Value(k)))
		}
		c.wins = append(c.wins, win{
			key:  dict.Value(keys.GetValueIndex(i)),
			end:  int64(ends.Value(i)) / int64(ivl.Value(i)),
			seq:  seqs.Value(i),
			vals: strings.Join(parts, " "),
		})
	}
}

type pt struct {
	key string
	t   int64 // in seconds
	v   float64
}

func run(t *testing.T, cfg Config, pts []pt) (*collector, Stats, []Outcome) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := &collector{}
	w := New(cfg, mem, c.emit)
	var outs []Outcome
	for _, p := range pts {
		outs = append(outs, w.Add([]byte(p.key), p.t*int64(time.Second), p.v))
	}
	w.Flush()
	w.Close()
	return c, w.Stats(), outs
}

func base() Config {
	return Config{Interval: time.Second, Length: 4, Stride: 2, MinObserved: 0.25, BatchSize: 100, MaxSeries: 10}
}

func seq(key string, from, to int64) []pt {
	var out []pt
	for i := from; i <= to; i++ {
		out = append(out, pt{key, i, float64(i)})
	}
	return out
}

func TestWindows(t *testing.T) {
	f := func(name string, cfg Config, pts []pt, want []string, wantOut map[int]Outcome) {
		t.Run(name, func(t *testing.T) {
			c, _, outs := run(t, cfg, pts)
			var got []string
			for _, w := range c.wins {
				got = append(got, w.String())
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("windows:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
			for i, o := range wantOut {
				if outs[i] != o {
					t.Errorf("point %d: outcome %d, want %d", i, outs[i], o)
				}
			}
		})
	}

	f("regular", base(), seq("a", 10, 17), []string{
		"a@13#0[10 11 12 13]",
		"a@15#1[12 13 14 15]",
		"a@17#2[14 15 16 17]",
	}, nil)

	f("gap is masked, not zero", base(), []pt{{"a", 10, 1}, {"a", 11, 2}, {"a", 13, 4}, {"a", 14, 5}, {"a", 15, 6}}, []string{
		"a@13#0[1 2 _ 4]",
		"a@15#1[_ 4 5 6]",
	}, nil)

	late := base()
	late.Lateness = 2 * time.Second
	f("out of order within lateness is placed", late, []pt{
		{"a", 10, 1}, {"a", 11, 2}, {"a", 13, 4}, {"a", 12, 3}, {"a", 14, 5}, {"a", 15, 6}, {"a", 16, 7}, {"a", 17, 8},
	}, []string{
		"a@13#0[1 2 3 4]",
		"a@15#1[3 4 5 6]",
	}, map[int]Outcome{3: Placed})

	f("later than lateness is dropped", late, []pt{
		{"a", 10, 1}, {"a", 11, 2}, {"a", 12, 3}, {"a", 13, 4}, {"a", 14, 5}, {"a", 15, 6}, {"a", 12, 99}, {"a", 16, 7}, {"a", 17, 8},
	}, []string{
		"a@13#0[1 2 3 4]",
		"a@15#1[3 4 5 6]",
	}, map[int]Outcome{6: Late})

	f("zero lateness drops any older slot", base(), []pt{{"a", 10, 1}, {"a", 12, 3}, {"a", 11, 2}, {"a", 13, 4}}, []string{
		"a@13#0[1 _ 3 4]",
	}, map[int]Outcome{2: Late})

	f("duplicate timestamp: last wins", base(), []pt{{"a", 10, 1}, {"a", 11, 2}, {"a", 12, 3}, {"a", 12, 30}, {"a", 13, 4}}, []string{
		"a@13#0[1 2 30 4]",
	}, map[int]Outcome{3: Duplicate})

	f("timestamps round to the nearest slot", base(), []pt{{"a", 10, 1}, {"a", 11, 2}, {"a", 12, 3}, {"a", 13, 4}}, []string{
		"a@13#0[1 2 3 4]",
	}, nil)

	f("long gap skips empty windows and keeps numbering", base(), []pt{
		{"a", 10, 1}, {"a", 11, 2}, {"a", 12, 3}, {"a", 13, 4}, {"a", 100, 5}, {"a", 101, 6}, {"a", 102, 7}, {"a", 103, 8},
	}, []string{
		"a@13#0[1 2 3 4]",
		"a@15#1[3 4 _ _]",
		"a@101#44[_ _ 5 6]",
		"a@103#45[5 6 7 8]",
	}, nil)

	sparse := base()
	sparse.MinObserved = 0.75
	f("sparse windows are skipped", sparse, []pt{{"a", 10, 1}, {"a", 11, 2}, {"a", 12, 3}, {"a", 13, 4}, {"a", 17, 8}}, []string{
		"a@13#0[1 2 3 4]",
	}, nil)

	f("series are independent", base(), append(seq("a", 0, 3), seq("b", 100, 103)...), []string{
		"a@3#0[0 1 2 3]",
		"b@103#0[100 101 102 103]",
	}, nil)

	auto := base()
	auto.Interval = 0
	auto.Length = 8
	auto.Stride = 4
	f("interval is inferred from the first points", auto, []pt{
		{"a", 0, 0}, {"a", 20, 2}, {"a", 10, 1}, {"a", 30, 3}, {"a", 40, 4}, {"a", 60, 6}, {"a", 70, 7}, {"a", 80, 8}, {"a", 90, 9}, {"a", 100, 10}, {"a", 110, 11},
	}, []string{
		"a@7#0[0 1 2 3 4 _ 6 7]",
		"a@11#1[4 _ 6 7 8 9 10 11]",
	}, map[int]Outcome{0: Buffered, 6: Buffered, 7: Placed})
}

func TestInferInterval(t *testing.T) {
	f := func(ts []int64, want time.Duration) {
		t.Helper()
		if got := time.Duration(inferInterval(ts)); got != want {
			t.Errorf("inferInterval(%v) = %v, want %v", ts, got, want)
		}
	}
	s := int64(time.Second)
	f([]int64{0, 10 * s, 20 * s, 30 * s}, 10*time.Second)
	f([]int64{0, 10*s + 3e6, 20*s - 2e6, 30*s + 1e6, 40 * s}, 10*time.Second) // jitter rounds away
	f([]int64{0, 10 * s, 30 * s, 40 * s, 50 * s}, 10*time.Second)             // a gap does not move the median
	f([]int64{0, 1500e6, 3000e6, 4500e6}, 1500*time.Millisecond)
	f([]int64{5, 5, 5}, 0)
}

func TestBatchesRespectBatchSize(t *testing.T) {
	cfg := base()
	cfg.BatchSize = 3
	cfg.Stride = 1
	c, st, _ := run(t, cfg, seq("a", 0, 20))
	if st.Windows != 18 || len(c.wins) != 18 {
		t.Fatalf("windows %d / %d, want 18", st.Windows, len(c.wins))
	}
	for i, n := range c.sizes {
		if n > 3 {
			t.Fatalf("batch %d has %d windows, batch_size is 3", i, n)
		}
	}
}

func TestSeriesCap(t *testing.T) {
	t.Run("evict_lru", func(t *testing.T) {
		cfg := base()
		cfg.MaxSeries = 2
		pts := []pt{{"a", 0, 1}, {"b", 0, 1}, {"a", 1, 2}, {"c", 0, 1}} // b is least recently used
		_, st, outs := run(t, cfg, pts)
		if st.Evicted != 1 || st.NewSeries != 3 || outs[3] != Placed {
			t.Fatalf("stats %+v outcomes %v", st, outs)
		}
	})
	t.Run("drop_new", func(t *testing.T) {
		cfg := base()
		cfg.MaxSeries = 2
		cfg.DropNew = true
		pts := []pt{{"a", 0, 1}, {"b", 0, 1}, {"c", 0, 1}, {"a", 1, 2}}
		_, st, outs := run(t, cfg, pts)
		if st.Rejected != 1 || outs[2] != Rejected || outs[3] != Placed {
			t.Fatalf("stats %+v outcomes %v", st, outs)
		}
	})
}

// TestStateRoundTrip checks that a Windower restored from a checkpoint in
// the middle of a stream emits exactly what an uninterrupted one does.
func TestStateRoundTrip(t *testing.T) {
	cfg := base()
	cfg.Lateness = 2 * time.Second
	cfg.Interval = 0
	cfg.Length = 8
	var pts []pt
	for i := int64(0); i < 60; i++ {
		for _, k := range []string{"x", "y", "z"} {
			if (i+int64(len(k)))%7 == 0 {
				continue // gaps
			}
			pts = append(pts, pt{k, i * 5, float64(i)})
		}
	}
	want, wantStats, _ := run(t, cfg, pts)

	for _, cut := range []int{0, 5, 20, 100, len(pts)} {
		c := &collector{}
		w := New(cfg, nil, c.emit)
		for _, p := range pts[:cut] {
			w.Add([]byte(p.key), p.t*int64(time.Second), p.v)
		}
		w.Flush()
		var e binenc.Writer
		w.AppendState(&e)
		w2 := New(cfg, nil, c.emit)
		r := binenc.NewReader(e.B)
		if err := w2.LoadState(r); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if err := r.Done(); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		for _, p := range pts[cut:] {
			w2.Add([]byte(p.key), p.t*int64(time.Second), p.v)
		}
		w2.Flush()
		if fmt.Sprint(c.wins) != fmt.Sprint(want.wins) {
			t.Fatalf("cut %d: windows differ after restore:\ngot  %v\nwant %v", cut, c.wins, want.wins)
		}
		if w2.Stats() != wantStats {
			t.Fatalf("cut %d: stats %+v, want %+v", cut, w2.Stats(), wantStats)
		}
	}
}

func TestStateRejectsOtherConfig(t *testing.T) {
	w := New(base(), nil, func(r arrow.RecordBatch) { r.Release() })
	w.Add([]byte("a"), 0, 1)
	var e binenc.Writer
	w.AppendState(&e)
	cfg := base()
	cfg.Length = 8
	err := New(cfg, nil, nil).LoadState(binenc.NewReader(e.B))
	if err == nil || !strings.Contains(err.Error(), "window.*") {
		t.Fatalf("want a config mismatch error, got %v", err)
	}
	for n := 0; n < len(e.B); n++ {
		if err := New(base(), nil, nil).LoadState(binenc.NewReader(e.B[:n])); err == nil {
			t.Fatalf("truncated state of %d bytes loaded without error", n)
		}
	}
}

// gp is a multichannel point: fields by name.
type gp struct {
	t      int64
	fields map[string]float64
}

func runGroup(t *testing.T, cfg Config, group string, pts []gp) *collector {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := &collector{}
	cfg.Multichannel = true
	w := New(cfg, mem, c.emit)
	for _, p := range pts {
		var names [][]byte
		var vals []float64
		for _, k := range []string{"b", "a", "c"} { // not sorted, on purpose
			if v, ok := p.fields[k]; ok {
				names = append(names, []byte(k))
				vals = append(vals, v)
			}
		}
		w.AddPoint([]byte(group), p.t*int64(time.Second), names, vals)
	}
	w.Flush()
	w.Close()
	return c
}

func TestMultichannel(t *testing.T) {
	cfg := base()
	cfg.BatchSize = 3 // smaller than a group of windows: groups must not split
	pts := []gp{
		{10, map[string]float64{"a": 1, "b": 10}},
		{11, map[string]float64{"a": 2}}, // b missing: a gap in b only
		{12, map[string]float64{"a": 3, "b": 30}},
		{13, map[string]float64{"a": 4, "b": 40, "c": 400}}, // c appears
		{14, map[string]float64{"a": 5, "b": 50, "c": 500}},
		{15, map[string]float64{"a": 6, "b": 60, "c": 600}},
	}
	c := runGroup(t, cfg, "m,h=x", pts)
	var got []string
	for _, w := range c.wins {
		got = append(got, w.String())
	}
	want := []string{
		"m,h=x#a@13#0[1 2 3 4]",
		"m,h=x#b@13#0[10 _ 30 40]",
		"m,h=x#c@13#0[_ _ _ 400]",
		"m,h=x#a@15#1[3 4 5 6]",
		"m,h=x#b@15#1[30 40 50 60]",
		"m,h=x#c@15#1[_ 400 500 600]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fmt.Sprint(c.sizes) != "[3 3]" {
		t.Fatalf("batch sizes %v: a group was split", c.sizes)
	}
}

func TestMultichannelStateRoundTrip(t *testing.T) {
	cfg := base()
	cfg.Interval = 0
	cfg.Length = 8
	cfg.Multichannel = true
	var pts []gp
	for i := int64(0); i < 40; i++ {
		f := map[string]float64{"a": float64(i)}
		if i%3 != 0 {
			f["b"] = float64(-i)
		}
		if i > 12 {
			f["c"] = float64(i * i)
		}
		pts = append(pts, gp{i * 10, f})
	}
	want := runGroup(t, cfg, "g", pts)
	for _, cut := range []int{0, 3, 9, 20, 40} {
		c := &collector{}
		w := New(cfg, nil, c.emit)
		feed := func(w *Windower, ps []gp) {
			for _, p := range ps {
				var names [][]byte
				var vals []float64
				for _, k := range []string{"b", "a", "c"} {
					if v, ok := p.fields[k]; ok {
						names = append(names, []byte(k))
						vals = append(vals, v)
					}
				}
				w.AddPoint([]byte("g"), p.t*int64(time.Second), names, vals)
			}
		}
		feed(w, pts[:cut])
		w.Flush()
		var e binenc.Writer
		w.AppendState(&e)
		w2 := New(cfg, nil, c.emit)
		if err := w2.LoadState(binenc.NewReader(e.B)); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		feed(w2, pts[cut:])
		w2.Flush()
		if fmt.Sprint(c.wins) != fmt.Sprint(want.wins) {
			t.Fatalf("cut %d:\ngot  %v\nwant %v", cut, c.wins, want.wins)
		}
	}
}
