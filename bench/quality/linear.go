package quality

import (
	"math"
	"strings"

	"github.com/tsrep/tsrep/models"
)

// relativeAR is the forecasting baseline that matches the SSL learner's
// linear path on its own: per series, an RLS autoregression on the order
// values before the window's last one, each minus the last, with an
// intercept, in fixed units (the first window's standard deviation); it
// learns each window's newest point before forecasting the next one. Set
// next to the learner, it shows what the learner's nonlinear correction
// adds.
type relativeAR struct {
	order      int
	forgetting float64
	series     map[string]*relSeries
	x          []float64
}

type relSeries struct {
	rls     *models.RLS
	scale   float64
	trained int64
}

func newRelativeAR(order int, forgetting float64) *relativeAR {
	return &relativeAR{order: order, forgetting: forgetting, series: map[string]*relSeries{}, x: make([]float64, order+1)}
}

// lags fills a.x from the window's values up to slot last (gaps carried
// forward) and returns the value at last; ok is false if the window holds
// no observed value up to last.
func (a *relativeAR) lags(b *models.Batch, i, last int, scale float64) (v float64, ok bool) {
	row := b.Row(i)
	fill := math.NaN()
	start := last - a.order
	vals := a.x[:a.order]
	for j := 0; j <= last; j++ {
		if b.Observed(i, j) {
			fill = row[j]
		}
		if j >= start && j < last {
			vals[j-start] = fill
		}
	}
	if math.IsNaN(fill) {
		return 0, false
	}
	for k := range vals {
		if math.IsNaN(vals[k]) {
			vals[k] = fill
		}
		vals[k] = (vals[k] - fill) / scale
	}
	a.x[a.order] = 1
	return fill, true
}

// step learns each row's newest point and returns its forecasts of the
// next slot (NaN where it has none).
func (a *relativeAR) step(b *models.Batch, out []float64) []float64 {
	out = out[:0]
	L := b.Length
	for i := 0; i < b.Rows; i++ {
		key := b.Key(i)
		s, ok := a.series[key]
		if !ok {
			var n models.Normaliser
			for j := 0; j < L; j++ {
				if b.Observed(i, j) {
					n.Add(b.Row(i)[j])
				}
			}
			s = &relSeries{rls: models.NewRLS(a.order+1, a.forgetting), scale: n.Std(), trained: math.MinInt64}
			a.series[strings.Clone(key)] = s
		}
		if end := int64(b.End[i]); b.Observed(i, L-1) && end > s.trained {
			if last, ok := a.lags(b, i, L-2, s.scale); ok {
				s.rls.Update(a.x, (b.Row(i)[L-1]-last)/s.scale)
			}
			s.trained = end
		}
		f := math.NaN()
		if last, ok := a.lags(b, i, L-1, s.scale); ok {
			f = last + s.rls.Predict(a.x)*s.scale
		}
		out = append(out, f)
	}
	return out
}
