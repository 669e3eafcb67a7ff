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
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/ingest"
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
	// Multichannel windows all fields of a measurement + tag set together
	// (use AddPoint): they share one event-time buffer, a field missing
	// from a point is a gap in its channel, and a window is emitted as one
	// row per channel, adjacent and never split across batches. MaxSeries
	// then counts groups.
	Multichannel bool
}

// MaxChannels caps the fields of one group in multichannel mode; points of
// further fields are counted as rejected.
const MaxChannels = 64

// InferPoints is how many points of a series are buffered to infer its
// interval when Config.Interval is 0.
const InferPoints = 8

// MaxLatenessSlots caps the lateness of a series in slots, so its ring
// buffer holds at most Length+MaxLatenessSlots slots (9 bytes each, per
// channel) in every mode. With a configured interval, config.Validate
// refuses a window.lateness of more intervals than this. With an inferred
// interval (window.interval = "auto") the lateness in slots is
// ceil(lateness/interval), capped here: a series whose points come so
// close together that window.lateness spans more slots (1 ns apart, as
// seconds read as nanoseconds) keeps the last MaxLatenessSlots slots of
// lateness, and a point later than that is Late like any other
// (Stats.LatenessCapped counts such series). Memory per series is then
// bounded by configuration whatever the data: a series that would need a
// ring of 3.6·10¹² slots must not take the process down.
const MaxLatenessSlots = 1 << 16

// Outcome is what happened to a point.
type Outcome uint8

// Outcomes of Add.
const (
	Placed    Outcome = iota
	Duplicate         // placed over an earlier point in the same slot (last wins)
	Late              // older than the allowed lateness: dropped
	Rejected          // a new series past MaxSeries with DropNew: dropped
	Buffered          // held while the series' interval is inferred
	// OutOfRange: a point so near the ends of the int64 nanosecond range
	// (years 1677 and 2262) that its windows' times, or the forecast one
	// interval after them, could not be represented: dropped, counted in
	// Stats.OutOfRange.
	OutOfRange
)

// Stats counts what a Windower did. All counters only grow.
type Stats struct {
	Points       uint64 // points given to Add
	Late         uint64
	Duplicates   uint64
	Rejected     uint64 // points of series (or channels) refused past the caps
	NewSeries    uint64
	Evicted      uint64 // series evicted past the cap
	Windows      uint64 // windows emitted
	SparseWindow uint64 // windows skipped for too few observed points
	OutOfRange   uint64 // points whose slot is outside the range windows can be emitted for
	// LatenessCapped counts series whose inferred interval would have
	// needed more than MaxLatenessSlots slots of lateness.
	LatenessCapped uint64
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

// Slots is the number of slots the series' buffers hold, all channels and
// points pending inference included: the windowing's memory is about 9
// bytes a slot, and at most Series() × MaxChannels (1 outside
// multichannel mode) × (Length + MaxLatenessSlots) slots.
func (w *Windower) Slots() int {
	n := 0
	w.series.Range(func(_ string, s *series) bool {
		for k := range s.chans {
			n += len(s.chans[k].vals)
		}
		n += len(s.pendT)
		return true
	})
	return n
}

// series is one series' buffer (in multichannel mode, one group's). Slot s
// holds the point nearest s*interval; the rings keep slots head-n+1 .. head.
type series struct {
	key      string
	interval int64
	lateness int64 // in slots
	lo, hi   int64 // the slots points may have (see slotRange)
	head     int64 // newest slot
	nextEnd  int64 // end slot of the next window to emit
	done     int64 // end slot of the last window emitted or skipped
	seq      uint64
	started  bool
	chans    []channel // sorted by name; one unnamed channel outside multichannel mode
	// pending holds the first points while the interval is inferred.
	pendT []int64
	pendC []int
	pendV []float64
}

// channel is one field's ring.
type channel struct {
	name string // field name (multichannel mode)
	key  string // series key of the rows emitted for it
	keyB []byte // the same, for the Arrow dictionary builder
	vals []float64
	obs  []bool
}

// Add places one point of the series key (single-channel mode). t is in
// Unix nanoseconds.
func (w *Windower) Add(key []byte, t int64, v float64) Outcome {
	w.stats.Points++
	s, out := w.lookup(key)
	if s == nil {
		return out
	}
	if len(s.chans) == 0 {
		w.addChannel(s, "", string(key))
	}
	out = w.addValue(s, t, 0, v)
	w.emitDue(s)
	return out
}

// AddPoint places the fields of one point of the group key (measurement +
// tag set, as ingest.AppendSeriesPrefix writes it) in multichannel mode.
// names and values are the fields; they share the timestamp t.
func (w *Windower) AddPoint(group []byte, t int64, names [][]byte, values []float64) Outcome {
	w.stats.Points += uint64(len(values))
	s, out := w.lookup(group)
	if s == nil {
		return out
	}
	worst := Placed
	for i, name := range names {
		c := w.channelOf(s, name)
		if c < 0 {
			w.stats.Rejected++
			worst = max(worst, Rejected)
			continue
		}
		if o := w.addValue(s, t, c, values[i]); o > worst {
			worst = o
		}
	}
	// Only now may the window ending at t go out: with all its fields.
	w.emitDue(s)
	return worst
}

// lookup finds or creates the series; nil with Rejected past the cap.
func (w *Windower) lookup(key []byte) (*series, Outcome) {
	s, ok := w.series.Get(key)
	if ok {
		return s, Placed
	}
	if w.series.Full() && w.cfg.DropNew {
		w.stats.Rejected++
		return nil, Rejected
	}
	s = &series{key: string(key)}
	if w.cfg.Interval > 0 {
		w.start(s, int64(w.cfg.Interval))
	}
	if _, _, evicted := w.series.Put(s.key, s); evicted {
		w.stats.Evicted++
	}
	w.stats.NewSeries++
	return s, Placed
}

// channelOf returns the index of field name in s, adding a channel (all
// gaps so far) if it is new; -1 past MaxChannels.
func (w *Windower) channelOf(s *series, name []byte) int {
	i, found := slices.BinarySearchFunc(s.chans, name, compareName)
	if found {
		return i
	}
	if len(s.chans) >= MaxChannels {
		return -1
	}
	key := string(ingest.AppendFieldKey([]byte(s.key), name))
	w.addChannel(s, string(name), key)
	// addChannel appended; move it into sorted position, and renumber the
	// channels of points still pending inference.
	c := s.chans[len(s.chans)-1]
	copy(s.chans[i+1:], s.chans[i:len(s.chans)-1])
	s.chans[i] = c
	for j, pc := range s.pendC {
		if pc >= i {
			s.pendC[j] = pc + 1
		}
	}
	return i
}

// compareName orders a channel by name against a field name, without
// converting either.
func compareName(c channel, n []byte) int {
	a := c.name
	for i := 0; i < len(a) && i < len(n); i++ {
		if a[i] != n[i] {
			return int(a[i]) - int(n[i])
		}
	}
	return len(a) - len(n)
}

func (w *Windower) addChannel(s *series, name, key string) {
	c := channel{name: name, key: key, keyB: []byte(key)}
	if s.interval > 0 {
		c.vals, c.obs = w.ring(s)
	}
	s.chans = append(s.chans, c)
}

// ring returns an empty ring for s's interval.
func (w *Windower) ring(s *series) ([]float64, []bool) {
	n := w.cfg.Length + int(s.lateness)
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = math.NaN()
	}
	return vals, make([]bool, n)
}

func (w *Windower) addValue(s *series, t int64, c int, v float64) Outcome {
	if s.interval == 0 {
		return w.infer(s, t, c, v)
	}
	return w.place(s, t, c, v)
}

// start fixes the series' interval and allocates its rings.
func (w *Windower) start(s *series, interval int64) {
	s.interval = interval
	s.lateness = w.latenessSlots(interval)
	if s.lateness == MaxLatenessSlots && w.cfg.Interval == 0 && ceilDiv(int64(w.cfg.Lateness), interval) > MaxLatenessSlots {
		w.stats.LatenessCapped++
	}
	s.lo, s.hi = w.slotRange(s)
	for i := range s.chans {
		s.chans[i].vals, s.chans[i].obs = w.ring(s)
	}
}

// latenessSlots is the lateness in slots of a series of the given
// interval: ceil(lateness/interval), at most MaxLatenessSlots.
func (w *Windower) latenessSlots(interval int64) int64 {
	return min(ceilDiv(int64(w.cfg.Lateness), interval), MaxLatenessSlots)
}

// ceilDiv is ceil(a/b) for a >= 0, b > 0, without overflow.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// slotRange returns the slots a point of s may fall in: every window of
// such points (its first slot is at or after the series' first point) has
// slot times within InfluxDB's range, and so has its forecast, one
// interval after its end; and the slot arithmetic (head + ring, window
// ends + stride) cannot overflow. Points outside are OutOfRange.
func (w *Windower) slotRange(s *series) (lo, hi int64) {
	ivl := s.interval
	lo = -(-ingest.MinTime / ivl) // ceil(MinTime/ivl)
	hi = ingest.MaxTime/ivl - 1   // end*ivl + ivl <= MaxTime
	margin := 4 * (int64(w.cfg.Length) + s.lateness + int64(w.cfg.Stride))
	return max(lo, math.MinInt64+margin), min(hi, math.MaxInt64-margin)
}

func (w *Windower) infer(s *series, t int64, c int, v float64) Outcome {
	s.pendT = append(s.pendT, t)
	s.pendC = append(s.pendC, c)
	s.pendV = append(s.pendV, v)
	need := min(InferPoints, w.cfg.Length)
	if distinct(s.pendT) < need {
		if len(s.pendT) > need*MaxChannels { // one timestamp over and over
			n := len(s.pendT) - need*MaxChannels
			s.pendT, s.pendC, s.pendV = s.pendT[n:], s.pendC[n:], s.pendV[n:]
		}
		return Buffered
	}
	w.start(s, inferInterval(s.pendT))
	// Replay the buffered points in time order (stable, so for equal
	// times the later arrival wins, as it would have).
	idx := make([]int, len(s.pendT))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(s.pendT[a], s.pendT[b]) })
	last := Placed
	for _, i := range idx {
		if o := w.place(s, s.pendT[i], s.pendC[i], s.pendV[i]); i == len(idx)-1 {
			last = o
		}
	}
	s.pendT, s.pendC, s.pendV = nil, nil, nil
	return last
}

func distinct(ts []int64) int {
	u := slices.Clone(ts)
	slices.Sort(u)
	return len(slices.Compact(u))
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
		if d[i] < 0 { // more than the int64 range apart
			d[i] = math.MaxInt64
		}
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
	r := m
	if m <= math.MaxInt64-unit/2 {
		r = (m + unit/2) / unit * unit
	}
	if r <= 0 {
		r = m
	}
	return r
}

// slotOf rounds t to the nearest slot of interval ivl (epoch aligned):
// floor((t + ivl/2) / ivl), without overflow.
func slotOf(t, ivl int64) int64 {
	q, r := t/ivl, t%ivl
	if r < 0 { // floor for negative times
		q--
		r += ivl
	}
	if r >= ivl-ivl/2 {
		q++
	}
	return q
}

func (w *Windower) place(s *series, t int64, c int, v float64) Outcome {
	slot := slotOf(t, s.interval)
	if slot < s.lo || slot > s.hi {
		w.stats.OutOfRange++
		return OutOfRange
	}
	n := int64(w.cfg.Length) + s.lateness
	ch := &s.chans[c]
	if !s.started {
		s.started = true
		s.head = slot
		s.nextEnd = slot + int64(w.cfg.Length) - 1
		s.done = math.MinInt64
		i := mod(slot, n)
		ch.vals[i], ch.obs[i] = v, true
		return Placed
	}
	if slot <= s.head {
		if slot < s.head-s.lateness || slot <= s.done {
			w.stats.Late++
			return Late
		}
		i := mod(slot, n)
		out := Placed
		if ch.obs[i] {
			w.stats.Duplicates++
			out = Duplicate
		}
		ch.vals[i], ch.obs[i] = v, true
		return out
	}
	// A gap longer than the ring: step through one ring's worth of slots,
	// which emits every window that can still see a point, then jump over
	// the windows that would hold nothing. Slots lie within [lo, hi], so
	// their differences fit in a uint64.
	if uint64(slot)-uint64(s.head) > uint64(n) {
		w.advance(s, s.head+n)
		if last := slot - 1 - s.lateness; s.nextEnd <= last {
			stride := uint64(w.cfg.Stride)
			k := (uint64(last)-uint64(s.nextEnd))/stride + 1
			s.nextEnd = int64(uint64(s.nextEnd) + k*stride)
			s.done = s.nextEnd - int64(w.cfg.Stride)
			s.seq += k
		}
		s.head = slot - 1 // the rings are all gaps now
	}
	w.advance(s, slot-1)
	w.emitDue(s) // windows ending before slot are complete, and slot's index is about to be reused
	s.head = slot
	i := mod(slot, n)
	for k := range s.chans {
		s.chans[k].vals[i], s.chans[k].obs[i] = math.NaN(), false
	}
	ch.vals[i], ch.obs[i] = v, true
	return Placed // the caller emits what is due once the timestamp is complete
}

// advance moves the head to slot one slot at a time, clearing each new slot
// and emitting the windows the watermark passes.
func (w *Windower) advance(s *series, slot int64) {
	n := int64(w.cfg.Length) + s.lateness
	for s.head < slot {
		s.head++
		i := mod(s.head, n)
		for k := range s.chans {
			s.chans[k].vals[i], s.chans[k].obs[i] = math.NaN(), false
		}
		w.emitDue(s)
	}
}

// emitDue emits the windows whose end the watermark has passed.
func (w *Windower) emitDue(s *series) {
	for s.started && s.nextEnd <= s.head-s.lateness {
		w.emitWindow(s, s.nextEnd)
		s.done = s.nextEnd
		s.nextEnd += int64(w.cfg.Stride)
		s.seq++
	}
}

// emitWindow appends the window ending at slot end, one row per channel,
// if some channel holds enough points; the batch is only closed after the
// whole group.
func (w *Windower) emitWindow(s *series, end int64) {
	n := int64(w.cfg.Length) + s.lateness
	L := int64(w.cfg.Length)
	a := mod(end-L+1, n)
	b := a + L // exclusive, may wrap
	seg := func(c *channel) (v1, v2 []float64, o1, o2 []bool) {
		if b <= n {
			return c.vals[a:b], nil, c.obs[a:b], nil
		}
		return c.vals[a:], c.vals[:b-n], c.obs[a:], c.obs[:b-n]
	}
	dense := false
	for k := range s.chans {
		_, _, o1, o2 := seg(&s.chans[k])
		if countTrue(o1)+countTrue(o2) >= w.minObs {
			dense = true
			break
		}
	}
	if !dense {
		w.stats.SparseWindow++
		return
	}
	for k := range s.chans {
		c := &s.chans[k]
		v1, v2, o1, o2 := seg(c)
		w.bb.appendWindow(c.keyB, end*s.interval, s.interval, s.seq, v1, v2, o1, o2)
		w.stats.Windows++
	}
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
