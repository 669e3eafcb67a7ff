package models

import (
	"fmt"
	"math/rand/v2"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/lru"
)

const sslStateVersion = 4 // 2: weights stored transposed (feature-major blocks); 3: imputation gate; 4: one column counter

// AppendState implements Learner: the configuration's shape, the weights,
// Adam's moments and step count, the random generator, the partly filled
// training buffer, the prediction-block column of the next window, the
// imputation gate, and every series' statistics, linear path and gate.
func (l *SSL) AppendState(w *binenc.Writer) {
	w.U32(sslStateVersion)
	for _, v := range l.shape() {
		w.U32(uint32(v))
	}
	w.F64s(l.params)
	w.F64s(l.adamM)
	w.F64s(l.adamV)
	w.U64(l.adamT)
	rs, _ := l.pcg.MarshalBinary() // never fails
	w.Bytes(rs)
	lc := l.lc
	w.Len(l.buf.n)
	for k := 0; k < l.buf.n; k++ {
		w.F64s(l.buf.z[k*lc : (k+1)*lc])
		w.F64(l.buf.r[k])
		w.I64(l.buf.end[k])
	}
	w.Len(l.col)
	for _, g := range l.igate {
		w.F64(g.src)
		w.F64(g.scc)
	}
	w.Len(l.series.Len())
	l.series.Range(func(key string, s *sslSeries) bool {
		w.String(key)
		s.norm.appendState(w)
		w.I64(s.folded)
		w.I64(s.trained)
		s.rls.appendState(w)
		w.F64(s.scale)
		w.F64(s.gSrc)
		w.F64(s.gScc)
		p := &s.pend
		w.Bool(p.ok)
		w.I64(p.time)
		for _, v := range []float64{p.lin, p.c, p.mean, p.std} {
			w.F64(v)
		}
		return true
	})
}

// shape lists the configuration values the state's layout depends on.
func (l *SSL) shape() []int {
	return []int{l.cfg.Length, l.cfg.Dim, l.cfg.Hidden, l.cfg.ARLags, l.cfg.TrainBatch, len(l.params)}
}

var shapeNames = []string{"length", "dim", "hidden", "ar lags", "train batch", "parameter count"}

// LoadState implements Learner. The state must have been written by a
// learner with the same length, dim, hidden, AR lags and train batch.
func (l *SSL) LoadState(r *binenc.Reader) error {
	if v := r.U32(); r.Err() == nil && v != sslStateVersion {
		return fmt.Errorf("ssl state version %d, this build reads %d", v, sslStateVersion)
	}
	for i, want := range l.shape() {
		got := int(r.U32())
		if r.Err() != nil {
			return r.Err()
		}
		if got != want {
			return fmt.Errorf("ssl state has %s %d, the configuration has %d: "+
				"changing the model's shape needs a fresh checkpoint", shapeNames[i], got, want)
		}
	}
	n := len(l.params)
	params := r.F64s(nil, n)
	m := r.F64s(nil, n)
	v := r.F64s(nil, n)
	t := r.U64()
	if r.Err() == nil && (len(params) != n || len(m) != n || len(v) != n) {
		r.Fail("ssl weights of the wrong size")
	}
	rs := r.Bytes(64)
	pcg := rand.NewPCG(0, 0)
	if r.Err() == nil {
		if err := pcg.UnmarshalBinary(rs); err != nil {
			r.Fail("ssl random state: %v", err)
		}
	}
	lc, B := l.lc, l.cfg.TrainBatch
	buf := sslBuffer{z: make([]float64, B*lc), r: make([]float64, B), end: make([]int64, B)}
	buf.n = r.Len(B-1, 8*lc+16)
	for k := 0; k < buf.n && r.Err() == nil; k++ {
		z := r.F64s(buf.z[k*lc:k*lc], lc)
		if r.Err() == nil && len(z) != lc {
			r.Fail("ssl buffered window of %d slots, want %d", len(z), lc)
		}
		buf.r[k] = r.F64()
		buf.end[k] = r.I64()
	}
	col := r.Len(B-1, 0)
	var igate [2]struct{ src, scc float64 }
	for k := range igate {
		igate[k].src, igate[k].scc = r.F64(), r.F64()
	}
	series := lru.New[*sslSeries](l.cfg.MaxSeries)
	ns := r.Len(l.cfg.MaxSeries, 1)
	for i := 0; i < ns && r.Err() == nil; i++ {
		key := r.String(1 << 16)
		s := &sslSeries{rls: NewRLS(l.cfg.ARLags+1, l.cfg.Forgetting)}
		s.norm.loadState(r)
		s.folded, s.trained = r.I64(), r.I64()
		s.rls.loadState(r)
		s.scale = r.F64()
		s.gSrc, s.gScc = r.F64(), r.F64()
		p := &s.pend
		p.ok = r.Bool()
		p.time = r.I64()
		p.lin, p.c, p.mean, p.std = r.F64(), r.F64(), r.F64(), r.F64()
		series.Put(key, s)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("load ssl state: %w", err)
	}
	copy(l.params, params)
	copy(l.adamM, m)
	copy(l.adamV, v)
	l.adamT = t
	*l.pcg = *pcg
	l.buf = buf
	l.col = col
	l.igate = igate
	l.series = series
	return nil
}
