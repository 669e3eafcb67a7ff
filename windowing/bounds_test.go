package windowing

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/binenc"
)

// TestInferredIntervalRingBounded: window.interval = "auto" with
// lateness = 1h and points 1 ns apart (seconds read as nanoseconds) used
// to size the ring for 3.6·10¹² slots and kill the process; the lateness
// in slots is now capped as for a configured interval, the series is
// counted, and a point later than the capped lateness is Late.
func TestInferredIntervalRingBounded(t *testing.T) {
	cfg := Config{Length: 16, Stride: 4, Lateness: time.Hour, MinObserved: 0.25, BatchSize: 100, MaxSeries: 10}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := &collector{}
	w := New(cfg, mem, c.emit)
	const t0 = 1_700_000_000 // seconds, read as ns
	for i := int64(0); i < 200_000; i++ {
		w.Add([]byte("m#v"), t0+i, float64(i%7))
	}
	if n := w.Slots(); n != cfg.Length+MaxLatenessSlots {
		t.Fatalf("the ring holds %d slots, want length + %d", n, MaxLatenessSlots)
	}
	st := w.Stats()
	if st.LatenessCapped != 1 || st.Windows == 0 {
		t.Fatalf("stats %+v", st)
	}
	if o := w.Add([]byte("m#v"), t0+200_000-MaxLatenessSlots-10, 1); o != Late {
		t.Fatalf("a point past the capped lateness: %v", o)
	}
	if o := w.Add([]byte("m#v"), t0+200_000-10, 1); o != Duplicate {
		t.Fatalf("a point within the capped lateness: %v", o)
	}
	// A configured interval is bounded by config.Validate: the same limit.
	if MaxLatenessSlots != config.MaxLatenessSlots {
		t.Fatalf("windowing.MaxLatenessSlots %d, config.MaxLatenessSlots %d", MaxLatenessSlots, config.MaxLatenessSlots)
	}
	// The capped state survives a checkpoint.
	var e binenc.Writer
	w.AppendState(&e)
	w2 := New(cfg, mem, c.emit)
	if err := w2.LoadState(binenc.NewReader(e.B)); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	w.Close()
	w2.Close()
}

// TestSlotsBounded: whatever the points, the buffers stay within
// Series() × channels × (Length + MaxLatenessSlots) slots.
func TestSlotsBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, cfg := range []Config{
		{Length: 8, Stride: 2, Lateness: 24 * time.Hour, MinObserved: 0.25, BatchSize: 10, MaxSeries: 5},
		{Interval: time.Nanosecond, Length: 8, Stride: 8, Lateness: 10 * time.Microsecond, MinObserved: 1, BatchSize: 10, MaxSeries: 3},
	} {
		w := New(cfg, memory.NewGoAllocator(), func(rec arrow.RecordBatch) { rec.Release() })
		for i := 0; i < 20_000; i++ {
			key := []byte{'s', byte('a' + r.IntN(8)), '#', 'v'}
			var ts int64
			switch r.IntN(4) {
			case 0:
				ts = r.Int64N(1 << 40)
			case 1:
				ts = int64(r.Uint64())
			case 2:
				ts = ingest.MaxTime - r.Int64N(1<<20)
			default:
				ts = ingest.MinTime + r.Int64N(1<<20)
			}
			w.Add(key, ts, r.Float64())
		}
		if max := w.Series() * (cfg.Length + MaxLatenessSlots + InferPoints*MaxChannels); w.Series() > cfg.MaxSeries || w.Slots() > max {
			t.Fatalf("%d series, %d slots (max %d)", w.Series(), w.Slots(), max)
		}
		w.Flush()
		w.Close()
	}
}

// TestTimesNearTheRangeEnds: points near the ends of InfluxDB's time range
// are placed while every time a window carries, and its forecast one
// interval later, stays in the range; points beyond are OutOfRange. With
// a 1 ns interval, a point at each end of the range used to overflow the
// slot arithmetic and loop for ~2^64 slots.
func TestTimesNearTheRangeEnds(t *testing.T) {
	hour := int64(time.Hour)
	for _, ivl := range []int64{1, 7, hour} {
		cfg := Config{Interval: time.Duration(ivl), Length: 4, Stride: 1, MinObserved: 0.25, BatchSize: 1000, MaxSeries: 10}
		var ends []int64
		var ivls []int64
		w := New(cfg, memory.NewGoAllocator(), func(rec arrow.RecordBatch) {
			defer rec.Release()
			e := rec.Column(ColEnd).(*array.Timestamp)
			d := rec.Column(ColInterval).(*array.Duration)
			for i := 0; i < int(rec.NumRows()); i++ {
				ends, ivls = append(ends, int64(e.Value(i))), append(ivls, int64(d.Value(i)))
			}
		})
		done := make(chan [2]int, 1)
		go func() {
			placed, out := 0, 0
			for _, base := range []int64{ingest.MinTime, ingest.MaxTime} { // one series, from one end to the other
				for k := int64(0); k < 40; k++ {
					ts := base - k*ivl
					if base < 0 {
						ts = base + k*ivl
					}
					switch w.Add([]byte("m#v"), ts, 1) {
					case OutOfRange:
						out++
					case Placed, Duplicate:
						placed++
					}
				}
			}
			w.Flush()
			done <- [2]int{placed, out}
		}()
		var res [2]int
		select {
		case res = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("interval %d: points at the ends of the range did not return (overflowed slot arithmetic)", ivl)
		}
		if res[0] == 0 || res[1] == 0 || w.Stats().OutOfRange != uint64(res[1]) {
			t.Fatalf("interval %d: placed %d, out of range %d, stats %+v", ivl, res[0], res[1], w.Stats())
		}
		if len(ends) == 0 {
			t.Fatalf("interval %d: no window emitted", ivl)
		}
		for i, end := range ends {
			first := end - int64(cfg.Length-1)*ivls[i]
			if !ingest.InTimeRange(end) || !ingest.InTimeRange(first) || end > ingest.MaxTime-ivls[i] {
				t.Fatalf("interval %d: window ending at %d (first slot %d, forecast at +%d) leaves InfluxDB's range", ivl, end, first, ivls[i])
			}
		}
		w.Close()
	}
	// An interval inferred from points further apart than int64 can say.
	w := New(Config{Length: 4, Stride: 1, MinObserved: 0.25, BatchSize: 10, MaxSeries: 10}, memory.NewGoAllocator(), func(rec arrow.RecordBatch) { rec.Release() })
	for _, ts := range []int64{ingest.MinTime, ingest.MaxTime, 0, 1, ingest.MinTime + 5, ingest.MaxTime - 5} {
		w.Add([]byte("m#v"), ts, 1)
	}
	w.Flush()
	w.Close()
}

// TestSlotOf: slotOf rounds to the nearest slot (half up), as
// floor((t + ivl/2) / ivl) in exact arithmetic, over the whole int64
// range.
func TestSlotOf(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 200_000; i++ {
		ts := int64(r.Uint64())
		ivl := r.Int64N(math.MaxInt64) + 1
		if i%3 == 0 {
			ivl = r.Int64N(1e12) + 1
		}
		num := new(big.Int).Add(big.NewInt(ts), big.NewInt(ivl/2))
		want := new(big.Int)
		m := new(big.Int)
		want.DivMod(num, big.NewInt(ivl), m) // Euclidean: floor for a positive divisor
		if got := slotOf(ts, ivl); !want.IsInt64() || got != want.Int64() {
			t.Fatalf("slotOf(%d, %d) = %d, want %s", ts, ivl, got, want)
		}
	}
}

// TestStateRejectsWrongLateness: a checkpoint whose series' lateness is not
// what the configuration gives for its interval is refused.
func TestStateRejectsWrongLateness(t *testing.T) {
	cfg := Config{Interval: time.Second, Length: 4, Stride: 2, Lateness: 3 * time.Second, MinObserved: 0.25, BatchSize: 10, MaxSeries: 10}
	w := New(cfg, memory.NewGoAllocator(), func(rec arrow.RecordBatch) { rec.Release() })
	defer w.Close()
	w.Add([]byte("m#v"), 1e9, 1)
	w.series.Range(func(_ string, s *series) bool {
		s.lateness = 2
		s.chans[0].vals, s.chans[0].obs = s.chans[0].vals[:6], s.chans[0].obs[:6]
		return true
	})
	var e binenc.Writer
	w.AppendState(&e)
	w2 := New(cfg, memory.NewGoAllocator(), func(rec arrow.RecordBatch) { rec.Release() })
	defer w2.Close()
	if err := w2.LoadState(binenc.NewReader(e.B)); err == nil {
		t.Fatal("loaded a series with a lateness the configuration does not give")
	}
}
