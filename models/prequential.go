package models

import (
	"math"
	"strings"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/lru"
)

// Prequential scores forecasts against what actually arrives. Each series'
// latest forecast waits until a later window shows the slot it forecast;
// if that slot was observed, the forecast is resolved with the actual value
// and the error, next to the repeat-the-last-value baseline made at the same
// moment. A forecast whose slot turns out to be a gap is dropped.
type Prequential struct {
	pending  *lru.Map[*pending]
	resolved []Resolved
}

type pending struct {
	time      int64
	predicted float64
	baseline  float64
}

// Resolved is a forecast whose actual value arrived.
type Resolved struct {
	Row       int // the row of the batch that brought the actual value
	Time      int64
	Predicted float64
	Baseline  float64 // the last observed value when the forecast was made
	Actual    float64
}

// NewPrequential tracks at most maxSeries series.
func NewPrequential(maxSeries int) *Prequential {
	return &Prequential{pending: lru.New[*pending](maxSeries)}
}

// Observe resolves the forecasts the batch's windows answer and records the
// batch's new forecasts. The result is valid until the next call.
func (p *Prequential) Observe(b *Batch, out *Output) []Resolved {
	p.resolved = p.resolved[:0]
	for i := 0; i < b.Rows; i++ {
		key := b.Key(i)
		pf, ok := p.pending.GetString(key)
		if ok && !math.IsNaN(pf.predicted) {
			start := b.SlotTime(i, 0)
			end := int64(b.End[i])
			if pf.time >= start && pf.time <= end {
				j := int((pf.time - start) / int64(b.Interval[i]))
				if b.SlotTime(i, j) == pf.time && b.Observed(i, j) {
					p.resolved = append(p.resolved, Resolved{
						Row: i, Time: pf.time, Predicted: pf.predicted, Baseline: pf.baseline, Actual: b.Row(i)[j],
					})
				}
			}
		}
		next := int64(b.End[i]) + int64(b.Interval[i])
		if ok && pf.time >= next {
			continue // windows of one series arrive in time order; keep the newer forecast
		}
		if !ok {
			pf = &pending{}
			p.pending.Put(strings.Clone(key), pf) // the key aliases the batch
		}
		pf.time, pf.predicted, pf.baseline = next, out.Forecast[i], b.LastObserved(i)
	}
	return p.resolved
}

// AppendState writes the outstanding forecasts.
func (p *Prequential) AppendState(w *binenc.Writer) {
	w.Len(p.pending.Len())
	p.pending.Range(func(k string, v *pending) bool {
		w.String(k)
		w.I64(v.time)
		w.F64(v.predicted)
		w.F64(v.baseline)
		return true
	})
}

// LoadState restores what AppendState wrote.
func (p *Prequential) LoadState(r *binenc.Reader) error {
	p.pending = lru.New[*pending](p.pending.Cap())
	n := r.Len(p.pending.Cap(), 28)
	for i := 0; i < n && r.Err() == nil; i++ {
		k := r.String(1 << 16)
		v := &pending{time: r.I64(), predicted: r.F64(), baseline: r.F64()}
		p.pending.Put(k, v)
	}
	return r.Err()
}
