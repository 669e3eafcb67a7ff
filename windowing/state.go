package windowing

import (
	"fmt"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/lru"
)

const stateVersion = 1

// AppendState appends the Windower's series buffers and counters to w. The
// unfinished batch is not part of the state: checkpoints are taken right
// after a Flush.
func (w *Windower) AppendState(e *binenc.Writer) {
	e.U32(stateVersion)
	e.I64(int64(w.cfg.Interval))
	e.U32(uint32(w.cfg.Length))
	e.U32(uint32(w.cfg.Stride))
	e.I64(int64(w.cfg.Lateness))
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
		e.F64s(s.vals)
		e.Bools(s.obs)
		e.Len(len(s.pendT))
		for i := range s.pendT {
			e.I64(s.pendT[i])
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
	ivl, length, stride, late := r.I64(), int(r.U32()), int(r.U32()), r.I64()
	if r.Err() != nil {
		return r.Err()
	}
	if ivl != int64(w.cfg.Interval) || length != w.cfg.Length || stride != w.cfg.Stride || late != int64(w.cfg.Lateness) {
		return fmt.Errorf("window state was written with interval=%d length=%d stride=%d lateness=%d, config has %d/%d/%d/%d: "+
			"changing window.* needs a fresh checkpoint directory", ivl, length, stride, late,
			w.cfg.Interval, w.cfg.Length, w.cfg.Stride, w.cfg.Lateness)
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
		s.vals = r.F64s(nil, maxRing)
		s.obs = r.Bools(nil, maxRing)
		np := r.Len(InferPoints, 16)
		for j := 0; j < np; j++ {
			s.pendT = append(s.pendT, r.I64())
			s.pendV = append(s.pendV, r.F64())
		}
		if r.Err() != nil {
			break
		}
		if len(s.vals) != len(s.obs) || s.interval < 0 || s.lateness < 0 ||
			(s.interval > 0 && len(s.vals) != w.cfg.Length+int(s.lateness)) || (s.interval == 0 && len(s.vals) != 0) {
			r.Fail("series %q has an inconsistent buffer", s.key)
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
