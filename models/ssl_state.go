package models

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/lru"
)

// Adam's constants.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// sslStateVersion 6: the convolutional encoder, the forecast mixture and
// the imputation models, their RLS matrices with their scale, and the
// series of each buffered training window (version 5, without either, is
// read too; states of versions 1–4, the MLP learner, are
// not read: a new model needs a new model.name or a fresh checkpoint).
const sslStateVersion = 6

// shape lists the configuration values the state's layout depends on.
func (l *SSL) shape() []int {
	return []int{l.cfg.Length, l.cfg.Dim, l.cfg.Hidden, l.cfg.Blocks, l.cfg.ARLags, l.mix.experts(),
		l.mix.history(), l.cfg.TrainBatch, len(l.enc.params), l.cfg.ImputeNeighbours}
}

var shapeNames = []string{"length", "dim", "hidden", "blocks", "ar lags", "forecast experts",
	"history", "train batch", "parameter count", "impute neighbours"}

// AppendState implements Learner: the configuration's shape, the encoder
// (weights, the version it was adopted from, Adam's moments), the random
// generator, the training buffer, the encoder round, and every series'
// statistics, history, forecast mixture, imputation model and pending
// forecast.
func (l *SSL) AppendState(w *binenc.Writer) {
	w.U32(sslStateVersion)
	for _, v := range l.shape() {
		w.U32(uint32(v))
	}
	l.enc.appendState(w)
	rs, _ := l.pcg.MarshalBinary() // never fails
	w.Bytes(rs)
	es, _ := l.encPCG.MarshalBinary()
	w.Bytes(es)
	n := encoderIn * l.cfg.Length
	w.Len(l.bufN)
	for k := 0; k < l.bufN; k++ {
		// buffer columns are window-major within each input row
		for r := 0; r < encoderIn; r++ {
			row := l.buf[r*l.cfg.TrainBatch*l.cfg.Length:]
			w.F64s(row[k*l.cfg.Length : (k+1)*l.cfg.Length])
		}
		w.I64(l.bufEnd[k])
		w.U64(l.bufSeries[k])
	}
	_ = n
	w.I64(l.epoch)
	w.I64(l.version)
	w.U64(l.windows)
	w.Bool(l.idle)
	w.I64(l.target)
	w.I64(l.want)
	w.Len(len(l.queue))
	for _, d := range l.queue {
		w.I64(d.epoch)
		w.Bool(d.train)
		w.F64s(d.x)
		w.String(d.key)
		w.I64(d.end)
		w.F64(d.loss.f)
		w.Len(d.loss.fn)
		w.F64(d.loss.i)
		w.Len(d.loss.in)
	}
	w.F64(l.loss.f)
	w.Len(l.loss.fn)
	w.F64(l.loss.i)
	w.Len(l.loss.in)
	w.Len(l.series.Len())
	l.series.Range(func(key string, s *sslSeries) bool {
		w.String(key)
		s.norm.appendState(w)
		w.I64(s.folded)
		w.F64(s.scale)
		w.F64s(s.hist)
		s.mix.appendState(w)
		w.Bool(s.imp != nil)
		if s.imp != nil {
			s.imp.appendState(w)
		}
		w.Bool(s.pendOK)
		w.I64(s.pendTime)
		w.F64(s.pendLast)
		w.F64(s.pendPred)
		return true
	})
}

// LoadState implements Learner. The state must have been written by a
// learner of the same shape.
func (l *SSL) LoadState(r *binenc.Reader) error {
	v := r.U32()
	if r.Err() == nil && v != sslStateVersion && v != 5 {
		return fmt.Errorf("ssl state version %d, this build reads 5 and %d (a new learner: set another model.name, or move the checkpoint away)", v, sslStateVersion)
	}
	v6 := v >= 6 // the RLS matrices' scale, the buffered windows' series
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
	enc := *l.enc
	n := len(enc.params)
	enc.params, enc.base, enc.adamM, enc.adamV = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	enc.loadState(r)
	rs, es := r.Bytes(64), r.Bytes(64)
	pcg, encPCG := rand.NewPCG(0, 0), rand.NewPCG(0, 0)
	if r.Err() == nil {
		if err := pcg.UnmarshalBinary(rs); err != nil {
			r.Fail("ssl random state: %v", err)
		} else if err := encPCG.UnmarshalBinary(es); err != nil {
			r.Fail("ssl random state: %v", err)
		}
	}
	B, L := l.cfg.TrainBatch, l.cfg.Length
	buf := make([]float64, encoderIn*B*L)
	bufEnd := make([]int64, B)
	bufSeries := make([]uint64, B)
	bufN := r.Len(B-1, 8*encoderIn*L+8)
	for k := 0; k < bufN && r.Err() == nil; k++ {
		for c := 0; c < encoderIn; c++ {
			row := buf[c*B*L+k*L : c*B*L+k*L]
			got := r.F64s(row, L)
			if r.Err() == nil && len(got) != L {
				r.Fail("ssl buffered window of %d slots, want %d", len(got), L)
			}
		}
		bufEnd[k] = r.I64()
		if v6 {
			bufSeries[k] = r.U64()
		}
	}
	epoch, version, windows := r.I64(), r.I64(), r.U64()
	idle := r.Bool()
	target, want := r.I64(), r.I64()
	nq := r.Len(l.cfg.MaxDeferred+l.cfg.Length, 8*encoderIn*L)
	queue := make([]deferred, 0, nq)
	for k := 0; k < nq && r.Err() == nil; k++ {
		d := deferred{epoch: r.I64(), train: r.Bool()}
		d.x = r.F64s(nil, encoderIn*L)
		d.key = r.String(1 << 16)
		d.end = r.I64()
		d.loss = lossAcc{f: r.F64(), fn: r.Len(math.MaxInt32, 0), i: r.F64(), in: r.Len(math.MaxInt32, 0)}
		if r.Err() == nil && len(d.x) != encoderIn*L {
			r.Fail("deferred window of %d values, want %d", len(d.x), encoderIn*L)
		}
		queue = append(queue, d)
	}
	fSum, fN, iSum, iN := r.F64(), r.Len(math.MaxInt32, 0), r.F64(), r.Len(math.MaxInt32, 0)
	series := lru.New[*sslSeries](l.cfg.MaxSeries)
	ns := r.Len(l.cfg.MaxSeries, 1)
	H := l.mix.history()
	for i := 0; i < ns && r.Err() == nil; i++ {
		key := r.String(1 << 16)
		s := &sslSeries{mix: newMixer(&l.mix)}
		s.norm.loadState(r)
		s.folded = r.I64()
		s.scale = r.F64()
		s.hist = r.F64s(nil, H)
		if r.Err() == nil && len(s.hist) != H {
			r.Fail("ssl series history of %d values, want %d", len(s.hist), H)
		}
		s.mix.loadState(&l.mix, r, v6)
		if r.Bool() {
			s.imp = loadImputer(r, l.cfg.ImputeNeighbours, l.cfg.ImputeForgetting, v6)
		}
		s.pendOK = r.Bool()
		s.pendTime = r.I64()
		s.pendLast = r.F64()
		s.pendPred = r.F64()
		if r.Err() == nil && !(s.scale > 0) {
			r.Fail("ssl series scale %v", s.scale)
		}
		series.Put(key, s)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("load ssl state: %w", err)
	}
	if epoch != math.MinInt64 && version > epoch {
		return fmt.Errorf("load ssl state: encoder version %d ahead of epoch %d", version, epoch)
	}
	net, ver := l.enc.net, l.enc.version
	*l.enc = enc
	net.bind(l.enc.params, l.enc.grad, 0)
	ver.bind(l.enc.base, make([]float64, len(l.enc.base)), 0)
	*l.pcg = *pcg
	*l.encPCG = *encPCG
	l.buf, l.bufEnd, l.bufSeries, l.bufN = buf, bufEnd, bufSeries, bufN
	l.epoch, l.version, l.windows, l.idle = epoch, version, windows, idle
	l.target, l.want, l.queue = target, want, queue
	l.loss = lossAcc{f: fSum, fn: fN, i: iSum, in: iN}
	l.series = series
	l.restoreSync()
	return nil
}
