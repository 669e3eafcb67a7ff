package windowing

import (
	"fmt"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/lru"
)

const stateVersion = 2

// AppendState appends the Windower's series buffers and counters to w. The
// unfinished batch is not part of the state: checkpoints are taken right
// after a Flush.
func (w *Windower) AppendState(e *binenc.Writer) {
	e.U32(stateVersion)
	e.I64(int64(w.cfg.Interval))
	e.U32(uint32(w.cfg.Length))
	e.U32(uint32(w.cfg.Stride))
	e.I64(int64(w.cfg.Lateness))
	e.Bool(w.cfg.Multichannel)
	st := w.stats
	for _, v := range []uint64{st.Points, st.Late, st.Duplicates, st.Rejected, st.NewSeries, st.Evicted, st.Windows, st.SparseWindow} {
		e.U64(v)
	}
	e.Len(w.series.Len())
	w.series.Range(func(key string, s *series) bool {
		e.String(key)
		e.I64(s.interval)
		e.I64(s.lateness)
		e.I64(s.head)
		e.I64(s.nextEnd)
		e.I64(s.done)
		e.U64(s.seq)
		e.Bool(s.started)
		e.Len(len(s.chans))
		for _, c := range s.chans {
			e.String(c.name)
			e.String(c.key)
			e.F64s(c.vals)
			e.Bools(c.obs)
		}
		e.Len(len(s.pendT))
		for i := range s.pendT {
			e.I64(s.pendT[i])
			e.Len(s.pendC[i])
			e.F64(s.pendV[i])
		}
		return true
	})
}

// LoadState replaces the Windower's series with state written by
// AppendState under the same window configuration.
func (w *Windower) LoadState(r *binenc.Reader) error {
	if v := r.U32(); v != stateVersion && r.Err() == nil {
		return fmt.Errorf("window state version %d, this build reads %d", v, stateVersion)
	}
	ivl, length, stride, late, multi := r.I64(), int(r.U32()), int(r.U32()), r.I64(), r.Bool()
	if r.Err() != nil {
		return r.Err()
	}
	if ivl != int64(w.cfg.Interval) || length != w.cfg.Length || stride != w.cfg.Stride || late != int64(w.cfg.Lateness) || multi != w.cfg.Multichannel {
		return fmt.Errorf("window state was written with interval=%d length=%d stride=%d lateness=%d multichannel=%v, config has %d/%d/%d/%d/%v: "+
			"changing window.* needs a fresh checkpoint directory", ivl, length, stride, late, multi,
			w.cfg.Interval, w.cfg.Length, w.cfg.Stride, w.cfg.Lateness, w.cfg.Multichannel)
	}
	w.series = lru.New[*series](w.cfg.MaxSeries)
	var st Stats
	for _, p := range []*uint64{&st.Points, &st.Late, &st.Duplicates, &st.Rejected, &st.NewSeries, &st.Evicted, &st.Windows, &st.SparseWindow} {
		*p = r.U64()
	}
	n := r.Len(w.cfg.MaxSeries, 1)
	maxRing := w.cfg.Length + 1<<16
	for i := 0; i < n && r.Err() == nil; i++ {
		s := &series{key: r.String(1 << 16)}
		s.interval, s.lateness, s.head, s.nextEnd, s.done = r.I64(), r.I64(), r.I64(), r.I64(), r.I64()
		s.seq = r.U64()
		s.started = r.Bool()
		nc := r.Len(MaxChannels, 1)
		for c := 0; c < nc && r.Err() == nil; c++ {
			ch := channel{name: r.String(1 << 16), key: r.String(1 << 17)}
			ch.keyB = []byte(ch.key)
			ch.vals = r.F64s(nil, maxRing)
			ch.obs = r.Bools(nil, maxRing)
			want := 0
			if s.interval > 0 {
				want = w.cfg.Length + int(s.lateness)
			}
			if r.Err() == nil && (len(ch.vals) != want || len(ch.obs) != want) {
				r.Fail("series %q channel %q has a buffer of %d, want %d", s.key, ch.name, len(ch.vals), want)
			}
			s.chans = append(s.chans, ch)
		}
		np := r.Len(InferPoints*MaxChannels+MaxChannels, 20)
		for j := 0; j < np; j++ {
			s.pendT = append(s.pendT, r.I64())
			c := int(r.U32())
			if r.Err() == nil && c >= nc {
				r.Fail("series %q: pending point of channel %d of %d", s.key, c, nc)
			}
			s.pendC = append(s.pendC, c)
			s.pendV = append(s.pendV, r.F64())
		}
		inferring := s.interval == 0
		if s.interval > 0 { // the ring is sized by the lateness; points are kept within [lo, hi]
			if r.Err() == nil && s.lateness != w.latenessSlots(s.interval) {
				r.Fail("series %q has a lateness of %d slots, want %d", s.key, s.lateness, w.latenessSlots(s.interval))
			}
			s.lo, s.hi = w.slotRange(s)
		}
		if r.Err() == nil && (s.interval < 0 || s.lateness < 0 ||
			inferring && (s.started || len(s.pendT) == 0) || !inferring && len(s.pendT) > 0) {
			r.Fail("series %q has an inconsistent state", s.key)
		}
		if r.Err() != nil {
			break
		}
		w.series.Put(s.key, s)
	}
	if r.Err() != nil {
		return r.Err()
	}
	w.stats = st
	return nil
}
