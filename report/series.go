package report

import (
	"context"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/tsrep/tsrep/query"
)

func drawForecast(dc draw.Canvas, series, model, rng string, pts []query.ForecastPoint) error {
	ts := make([]time.Time, len(pts))
	pred, act, abs, base := make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts))
	var sum, sumBase float64
	var n int
	for i, p := range pts {
		ts[i], pred[i], act[i], abs[i], base[i] = p.Time, p.Predicted, p.Actual, p.AbsError, p.LastValueAbsError
		if !math.IsNaN(p.AbsError) && !math.IsNaN(p.LastValueAbsError) {
			sum += p.AbsError
			sumBase += p.LastValueAbsError
			n++
		}
	}
	top := plot.New()
	top.Title.Text = fmt.Sprintf("%s: forecast and actual (model %s, %s)", series, model, rng)
	top.Y.Label.Text = "value"
	timeAxis(top)
	top.Legend.Top = true
	if err := addLine(top, "actual", ts, act, colActual, false); err != nil {
		return err
	}
	if err := addLine(top, "forecast", ts, pred, colForecast, false); err != nil {
		return err
	}
	headroom(top, 0.15)
	bottom := plot.New()
	bottom.Title.Text = "absolute error"
	if n > 0 {
		bottom.Title.Text = fmt.Sprintf("absolute error (MAE %.4g; repeating the last value: %.4g)", sum/float64(n), sumBase/float64(n))
	}
	bottom.Y.Label.Text = "|actual - forecast|"
	bottom.Y.Min = 0
	timeAxis(bottom)
	bottom.Legend.Top = true
	if err := addLine(bottom, "forecast", ts, abs, colError, false); err != nil {
		return err
	}
	if err := addLine(bottom, "last value", ts, base, colBaseline, true); err != nil {
		return err
	}
	headroom(bottom, 0.25)
	syncX(top, bottom)
	stack(dc, top, bottom)
	return nil
}

func drawImputed(dc draw.Canvas, series, model, rng string, raw []query.ForecastPoint, imp []query.ImputedPoint) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d filled gaps over the series (model %s, %s)", series, len(imp), model, rng)
	p.Y.Label.Text = "value"
	p.Legend.Top = true
	if len(raw) > 0 {
		ts := make([]time.Time, len(raw))
		vs := make([]float64, len(raw))
		for i, r := range raw {
			ts[i], vs[i] = r.Time, r.Actual
		}
		if err := addLine(p, "series (actual values)", ts, vs, colActual, false); err != nil {
			return err
		}
	}
	xys := make(plotter.XYs, len(imp))
	for i, q := range imp {
		xys[i] = plotter.XY{X: secs(q.Time), Y: q.Value}
	}
	s, err := plotter.NewScatter(xys)
	if err != nil {
		return err
	}
	s.GlyphStyle.Color = colImputed
	s.GlyphStyle.Shape = draw.CircleGlyph{}
	s.GlyphStyle.Radius = vg.Points(3)
	p.Add(s)
	p.Legend.Add("imputed", s)
	timeAxis(p)
	headroom(p, 0.2)
	stack(dc, p)
	return nil
}

// seriesPlots draws forecast_, imputed_ and anomaly_<name>.png of one
// series over [from, to).
func (w *writer) seriesPlots(ctx context.Context, c *query.Client, o Options, key, name string, from, to time.Time) error {
	rng := rangeText(from, to)
	fc, err := c.Forecasts(ctx, key, from, to, o.Model)
	if err != nil {
		return fmt.Errorf("report: forecasts of %q: %w", key, err)
	}
	file := "forecast_" + name + ".png"
	if len(fc) == 0 {
		w.skip(file, "no forecasts of series %q with model %q (%s)", key, o.Model, rng)
	} else if err := w.save(file, 30*vg.Centimeter, 18*vg.Centimeter, func(dc draw.Canvas) error {
		return drawForecast(dc, key, o.Model, rng, fc)
	}); err != nil {
		return err
	}

	imp, err := c.Imputed(ctx, key, from, to, o.Model)
	if err != nil {
		return fmt.Errorf("report: imputed points of %q: %w", key, err)
	}
	file = "imputed_" + name + ".png"
	if len(imp) == 0 {
		w.skip(file, "no imputed points of series %q with model %q (%s; the learner does not impute, or the series had no gaps)", key, o.Model, rng)
	} else if err := w.save(file, 30*vg.Centimeter, 12*vg.Centimeter, func(dc draw.Canvas) error {
		return drawImputed(dc, key, o.Model, rng, fc, imp)
	}); err != nil {
		return err
	}

	an, err := c.Anomalies(ctx, key, from, to, o.Model, 0)
	if err != nil {
		return fmt.Errorf("report: anomaly scores of %q: %w", key, err)
	}
	file = "anomaly_" + name + ".png"
	if len(an) == 0 {
		w.skip(file, "no anomaly scores of series %q with model %q in %s (%s)", key, o.Model, c.Prefix()+query.MeasAnomaly, rng)
	} else if err := w.save(file, 30*vg.Centimeter, 18*vg.Centimeter, func(dc draw.Canvas) error {
		return drawAnomaly(dc, key, o.Model, rng, fc, an)
	}); err != nil {
		return err
	}
	return nil
}

// drawAnomaly draws the series' actual values with the points that scored
// at least HighScore marked, above the score over time.
func drawAnomaly(dc draw.Canvas, series, model, rng string, raw []query.ForecastPoint, an []query.AnomalyPoint) error {
	ts := make([]time.Time, len(an))
	score := make([]float64, len(an))
	high := 0
	for i, a := range an {
		ts[i], score[i] = a.Time, a.Score
		if a.Score >= HighScore {
			high++
		}
	}
	bottom := plot.New()
	bottom.Title.Text = fmt.Sprintf("anomaly score (computed before the point was learnt from): %d of %d points at or above %.2g", high, len(an), HighScore)
	bottom.Y.Label.Text = "score"
	bottom.Y.Min, bottom.Y.Max = 0, 1.15
	timeAxis(bottom)
	bottom.Legend.Top = true
	if err := addLine(bottom, "score", ts, score, colScore, false); err != nil {
		return err
	}
	thr, err := plotter.NewLine(plotter.XYs{{X: secs(ts[0]), Y: HighScore}, {X: secs(ts[len(ts)-1]), Y: HighScore}})
	if err != nil {
		return err
	}
	thr.LineStyle.Color = colBaseline
	thr.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	bottom.Add(thr)
	bottom.Legend.Add(fmt.Sprintf("%.2g", HighScore), thr)

	top := plot.New()
	top.Title.Text = fmt.Sprintf("%s: anomaly scores of model %s (%s)", series, model, rng)
	top.Y.Label.Text = "value"
	timeAxis(top)
	top.Legend.Top = true
	actual := map[int64]float64{}
	if len(raw) > 0 {
		rts := make([]time.Time, len(raw))
		vs := make([]float64, len(raw))
		for i, r := range raw {
			rts[i], vs[i] = r.Time, r.Actual
			actual[r.Time.UnixNano()] = r.Actual
		}
		if err := addLine(top, "series (actual values)", rts, vs, colActual, false); err != nil {
			return err
		}
	}
	var marks plotter.XYs
	for _, a := range an {
		if v, ok := actual[a.Time.UnixNano()]; ok && a.Score >= HighScore && !math.IsNaN(v) {
			marks = append(marks, plotter.XY{X: secs(a.Time), Y: v})
		}
	}
	if len(marks) > 0 {
		s, err := plotter.NewScatter(marks)
		if err != nil {
			return err
		}
		s.GlyphStyle.Color = colHigh
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		s.GlyphStyle.Radius = vg.Points(4)
		top.Add(s)
		top.Legend.Add(fmt.Sprintf("score ≥ %.2g", HighScore), s)
	}
	if len(raw) == 0 {
		top.Title.Text += ": no forecasts in the range, so no values to show"
	}
	headroom(top, 0.15)
	syncX(top, bottom)
	stack(dc, top, bottom)
	return nil
}
