// Package windowing turns points into windows on event time. Each series
// (measurement + tag set + field) has a ring buffer on a fixed sampling
// interval: a point lands in the slot nearest its timestamp, a slot with no
// point is a gap in the observed mask (never a zero), a point up to the
// allowed lateness behind the newest one is still placed (unless a window
// holding its slot was already emitted), and a later one is counted and
// dropped. Every stride slots a window of length slots is
// emitted, once the watermark (the newest slot minus the lateness) has passed
// its end, into an Arrow record batch.
//
// Everything here is a function of the order of the points a Windower is
// given, never of the wall clock, so replaying a partition rebuilds the same
// windows.
package windowing

import (
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/internal/lru"
)

// Config configures a Windower.
type Config struct {
	// Interval is the sampling interval; 0 infers it per series from its
	// first InferPoints points (the median spacing, rounded).
	Interval time.Duration
	Length   int
	Stride   int
	Lateness time.Duration
	// MinObserved is the share of a window's slots that must hold a point
	// for the window to be emitted.
	MinObserved float64
	BatchSize   int
	MaxSeries   int
	// DropNew keeps the series already held when a new series arrives past
	// MaxSeries (its points are counted and dropped); otherwise the least
	// recently updated series is evicted to make room.
	DropNew bool
}

// InferPoints is how many points of a series are buffered to infer its
// interval when Config.Interval is 0.
const InferPoints = 8

// Outcome is what happened to a point.
type Outcome uint8

// Outcomes of Add.
const (
	Placed    Outcome = iota
	Duplicate         // placed over an earlier point in the same slot (last wins)
	Late              // older than the allowed lateness: dropped
	Rejected          // a new series past MaxSeries with DropNew: dropped
	Buffered          // held while the series' interval is inferred
)

// Stats counts what a Windower did. All counters only grow.
type Stats struct {
	Points       uint64 // points given to Add
	Late         uint64
	Duplicates   uint64
	Rejected     uint64 // points of series refused past the cap
	NewSeries    uint64
	Evicted      uint64 // series evicted past the cap
	Windows      uint64 // windows emitted
	SparseWindow uint64 // windows skipped for too few observed points
}

// Windower holds the series of one partition. It is not safe for
// concurrent use.
type Windower struct {
	cfg    Config
	series *lru.Map[*series]
	bb     *batchBuilder
	emit   func(arrow.RecordBatch)
	minObs int
	stats  Stats
}

// New returns a Windower that calls emit with each full batch (the callee
// owns the batch and must Release it). Flush emits a partial batch.
func New(cfg Config, mem memory.Allocator, emit func(arrow.RecordBatch)) *Windower {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	minObs := int(math.Ceil(cfg.MinObserved * float64(cfg.Length)))
	if minObs < 1 {
		minObs = 1
	}
	return &Windower{
		cfg:    cfg,
		series: lru.New[*series](cfg.MaxSeries),
		bb:     newBatchBuilder(mem, cfg.Length, cfg.BatchSize),
		emit:   emit,
		minObs: minObs,
	}
}

// Stats returns the counters.
func (w *Windower) Stats() Stats { return w.stats }

// Series is the number of series held.
func (w *Windower) Series() int { return w.series.Len() }

// Pending is the number of windows in the unfinished batch.
func (w *Windower) Pending() int { return w.bb.n }

// Flush emits the unfinished batch, if it holds any window.
func (w *Windower) Flush() {
	if w.bb.n > 0 {
		w.emit(w.bb.build())
	}
}

// Close releases the builders. Pending windows are dropped; Flush first.
func (w *Windower) Close() { w.bb.release() }

// series is one series' buffer. Slot s holds the point nearest s*interval;
// the ring keeps slots head-cap+1 .. head.
type series struct {
	key      string
	interval int64
	lateness int64 // in slots
	head     int64 // newest slot
	nextEnd  int64 // end slot of the next window to emit
	done     int64 // end slot of the last window emitted or skipped
	seq      uint64
	started  bool
	vals     []float64
	obs      []bool
	// pending holds the first points while the interval is inferred.
	pendT []int64
	pendV []float64
}

// Add places one point of the series key. t is in Unix nanoseconds.
func (w *Windower) Add(key []byte, t int64, v float64) Outcome {
	w.stats.Points++
	s, ok := w.series.Get(key)
	if !ok {
		if w.series.Full() && w.cfg.DropNew {
			w.stats.Rejected++
			return Rejected
		}
		s = &series{key: string(key)}
		if w.cfg.Interval > 0 {
			w.start(s, int64(w.cfg.Interval))
		}
		if _, _, evicted := w.series.Put(s.key, s); evicted {
			w.stats.Evicted++
		}
		w.stats.NewSeries++
	}
	if s.interval == 0 {
		return w.infer(s, t, v)
	}
	return w.place(s, t, v)
}

// start fixes the series' interval and allocates its ring.
func (w *Windower) start(s *series, interval int64) {
	s.interval = interval
	s.lateness = (int64(w.cfg.Lateness) + interval - 1) / interval
	n := w.cfg.Length + int(s.lateness)
	s.vals = make([]float64, n)
	s.obs = make([]bool, n)
	for i := range s.vals {
		s.vals[i] = math.NaN()
	}
}

func (w *Windower) infer(s *series, t int64, v float64) Outcome {
	s.pendT = append(s.pendT, t)
	s.pendV = append(s.pendV, v)
	need := InferPoints
	if need > w.cfg.Length {
		need = w.cfg.Length
	}
	if len(s.pendT) < need {
		return Buffered
	}
	ivl := inferInterval(s.pendT)
	if ivl <= 0 {
		// All timestamps equal so far: keep the newest point only.
		s.pendT[0], s.pendV[0] = s.pendT[len(s.pendT)-1], s.pendV[len(s.pendV)-1]
		s.pendT, s.pendV = s.pendT[:1], s.pendV[:1]
		return Buffered
	}
	w.start(s, ivl)
	// Replay the buffered points in time order (stable, so for equal
	// times the later arrival wins, as it would have).
	idx := make([]int, len(s.pendT))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case s.pendT[a] < s.pendT[b]:
			return -1
		case s.pendT[a] > s.pendT[b]:
			return 1
		}
		return 0
	})
	last := Placed
	for _, i := range idx {
		if o := w.place(s, s.pendT[i], s.pendV[i]); o == Late {
			w.stats.Late++ // cannot happen in time order; counted if it does
		} else if i == len(idx)-1 {
			last = o
		}
	}
	s.pendT, s.pendV = nil, nil
	return last
}

// inferInterval returns the median spacing of the distinct sorted times,
// rounded to a tenth of its order of magnitude's unit (ns, µs, ms, s).
func inferInterval(ts []int64) int64 {
	u := slices.Clone(ts)
	slices.Sort(u)
	u = slices.Compact(u)
	if len(u) < 2 {
		return 0
	}
	d := make([]int64, len(u)-1)
	for i := range d {
		d[i] = u[i+1] - u[i]
	}
	slices.Sort(d)
	m := d[len(d)/2]
	unit := int64(1)
	for _, c := range []int64{int64(time.Second), int64(time.Millisecond), int64(time.Microsecond)} {
		if m >= 10*c {
			unit = c
			break
		}
	}
	r := (m + unit/2) / unit * unit
	if r <= 0 {
		r = m
	}
	return r
}

// slotOf rounds t to the nearest slot of interval ivl (epoch aligned).
func slotOf(t, ivl int64) int64 {
	q := (t + ivl/2) / ivl
	if (t+ivl/2)%ivl < 0 {
		q-- // floor for negative times
	}
	return q
}

func (w *Windower) place(s *series, t int64, v float64) Outcome {
	slot := slotOf(t, s.interval)
	n := int64(len(s.vals))
	if !s.started {
		s.started = true
		s.head = slot
		s.nextEnd = slot + int64(w.cfg.Length) - 1
		s.done = math.MinInt64
		i := mod(slot, n)
		s.vals[i], s.obs[i] = v, true
		return Placed
	}
	if slot <= s.head {
		if slot < s.head-s.lateness || slot <= s.done {
			w.stats.Late++
			return Late
		}
		i := mod(slot, n)
		out := Placed
		if s.obs[i] {
			w.stats.Duplicates++
			out = Duplicate
		}
		s.vals[i], s.obs[i] = v, true
		return out
	}
	// A gap longer than the ring: step through one ring's worth of slots,
	// which emits every window that can still see a point, then jump over
	// the windows that would hold nothing.
	if slot-s.head > n {
		w.advance(s, s.head+n)
		if last := slot - 1 - s.lateness; s.nextEnd <= last {
			k := (last-s.nextEnd)/int64(w.cfg.Stride) + 1
			s.nextEnd += k * int64(w.cfg.Stride)
			s.done = s.nextEnd - int64(w.cfg.Stride)
			s.seq += uint64(k)
		}
		s.head = slot - 1 // the ring is all gaps now
	}
	w.advance(s, slot-1)
	s.head = slot
	i := mod(slot, n)
	s.vals[i], s.obs[i] = v, true
	w.emitDue(s)
	return Placed
}

// advance moves the head to slot one slot at a time, clearing each new slot
// and emitting the windows the watermark passes.
func (w *Windower) advance(s *series, slot int64) {
	n := int64(len(s.vals))
	for s.head < slot {
		s.head++
		i := mod(s.head, n)
		s.vals[i], s.obs[i] = math.NaN(), false
		w.emitDue(s)
	}
}

// emitDue emits the windows whose end the watermark has passed.
func (w *Windower) emitDue(s *series) {
	for s.nextEnd <= s.head-s.lateness {
		w.emitWindow(s, s.nextEnd)
		s.done = s.nextEnd
		s.nextEnd += int64(w.cfg.Stride)
		s.seq++
	}
}

func (w *Windower) emitWindow(s *series, end int64) {
	n := int64(len(s.vals))
	L := int64(w.cfg.Length)
	a := mod(end-L+1, n)
	b := a + L // exclusive, may wrap
	var v1, v2 []float64
	var o1, o2 []bool
	if b <= n {
		v1, o1 = s.vals[a:b], s.obs[a:b]
	} else {
		v1, o1 = s.vals[a:], s.obs[a:]
		v2, o2 = s.vals[:b-n], s.obs[:b-n]
	}
	if countTrue(o1)+countTrue(o2) < w.minObs {
		w.stats.SparseWindow++
		return
	}
	w.bb.appendWindow(s.key, end*s.interval, s.interval, s.seq, v1, v2, o1, o2)
	w.stats.Windows++
	if w.bb.n >= w.cfg.BatchSize {
		w.emit(w.bb.build())
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

func mod(a, n int64) int64 {
	r := a % n
	if r < 0 {
		r += n
	}
	return r
}
