// Package report draws PNG plots of what tsrep wrote to InfluxDB, read back
// through package query:
//
//	forecast_<series>.png  forecast next to actual, and the absolute error
//	losses.png             the training losses over time (tsrep_train)
//	imputed_<series>.png   the filled gaps over the raw series
//	embeddings_pca.png     a 2-D PCA projection of every series' latest
//	                       embedding, coloured by measurement
//
// A plot whose data is missing (a learner that writes no embeddings or
// imputes nothing, a series without forecasts in the range) is skipped
// and the reason reported; it is not an error.
package report

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tsrep/tsrep/query"
)

// Options says what to draw.
type Options struct {
	// Series are the series keys of the per-series plots.
	Series []string
	// From and To bound every plot's data to [From, To); zero is
	// unbounded. The PCA uses the latest embeddings before To.
	From, To time.Time
	// Model is the model tag to read.
	Model string
	// Dir receives the PNG files (created if missing).
	Dir string
}

// Result lists what Write did.
type Result struct {
	// Files are the paths written, in the order written.
	Files []string
	// Skipped explains each plot not drawn, naming its file.
	Skipped []string
}

// Write queries c and writes the plots of o into o.Dir. File names are
// deterministic: see the package comment; <series> is SeriesFileName.
func Write(ctx context.Context, c *query.Client, o Options) (Result, error) {
	var res Result
	if o.Model == "" {
		return res, errors.New("report: model is empty: set model.name in the config or pass --model")
	}
	if o.Dir == "" {
		return res, errors.New("report: output directory is empty: pass --out DIR")
	}
	names, err := fileNames(o.Series)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return res, fmt.Errorf("report: create output directory: %w", err)
	}
	save := func(name string, w, h vg.Length, draw func(draw.Canvas) error) error {
		img := vgimg.New(w, h)
		if err := draw(newCanvas(img)); err != nil {
			return fmt.Errorf("report: draw %s: %w", name, err)
		}
		path := filepath.Join(o.Dir, name)
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
			f.Close()
			return fmt.Errorf("report: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("report: write %s: %w", path, err)
		}
		res.Files = append(res.Files, path)
		return nil
	}
	skip := func(name, format string, a ...any) {
		res.Skipped = append(res.Skipped, name+": "+fmt.Sprintf(format, a...))
	}

	for i, s := range o.Series {
		key, _ := query.CanonicalSeries(s)
		fc, err := c.Forecasts(ctx, key, o.From, o.To, o.Model)
		if err != nil {
			return res, fmt.Errorf("report: forecasts of %q: %w", key, err)
		}
		name := "forecast_" + names[i] + ".png"
		if len(fc) == 0 {
			skip(name, "no forecasts of series %q with model %q in the range", key, o.Model)
		} else if err := save(name, 30*vg.Centimeter, 18*vg.Centimeter, func(dc draw.Canvas) error {
			return drawForecast(dc, key, o.Model, fc)
		}); err != nil {
			return res, err
		}

		imp, err := c.Imputed(ctx, key, o.From, o.To, o.Model)
		if err != nil {
			return res, fmt.Errorf("report: imputed points of %q: %w", key, err)
		}
		name = "imputed_" + names[i] + ".png"
		if len(imp) == 0 {
			skip(name, "no imputed points of series %q with model %q in the range (the learner does not impute, or the series had no gaps)", key, o.Model)
		} else if err := save(name, 30*vg.Centimeter, 12*vg.Centimeter, func(dc draw.Canvas) error {
			return drawImputed(dc, key, o.Model, fc, imp)
		}); err != nil {
			return res, err
		}
	}

	steps, err := c.TrainLosses(ctx, o.Model, o.From, o.To)
	if err != nil {
		return res, fmt.Errorf("report: training losses: %w", err)
	}
	panels := lossPanels(steps)
	if len(panels) == 0 {
		if len(steps) == 0 {
			skip("losses.png", "no training steps of model %q in the range", o.Model)
		} else {
			skip("losses.png", "the %d training steps of model %q carry no losses", len(steps), o.Model)
		}
	} else if err := save("losses.png", 30*vg.Centimeter, vg.Length(len(panels))*8*vg.Centimeter, func(dc draw.Canvas) error {
		return drawLosses(dc, o.Model, panels)
	}); err != nil {
		return res, err
	}

	at := o.To
	if !at.IsZero() {
		at = at.Add(-time.Nanosecond)
	}
	embs, err := c.LatestEmbeddings(ctx, at, o.Model)
	if err != nil {
		return res, fmt.Errorf("report: embeddings: %w", err)
	}
	embs = commonDim(embs)
	if len(embs) < 3 {
		skip("embeddings_pca.png", "%d series with embeddings of model %q (a PCA needs at least 3; learners without an encoder write none)", len(embs), o.Model)
	} else if err := save("embeddings_pca.png", 24*vg.Centimeter, 20*vg.Centimeter, func(dc draw.Canvas) error {
		return drawPCA(dc, o.Model, embs)
	}); err != nil {
		return res, err
	}
	return res, nil
}

// SeriesFileName turns a series key into the <series> part of a file name:
// every run of characters other than letters, digits, '.', '-' and '_'
// becomes one '_'.
func SeriesFileName(series string) string {
	var b strings.Builder
	under := false
	for _, r := range series {
		ok := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '.' || r == '-' || r == '_'
		if !ok {
			if !under {
				b.WriteByte('_')
			}
			under = true
			continue
		}
		b.WriteRune(r)
		under = false
	}
	return strings.Trim(b.String(), "_")
}

// fileNames validates the series and names their files; series whose names
// collide get _2, _3... in the order given.
func fileNames(series []string) ([]string, error) {
	seen := map[string]int{}
	keys := map[string]bool{}
	out := make([]string, len(series))
	for i, s := range series {
		key, err := query.CanonicalSeries(s)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		if keys[key] {
			return nil, fmt.Errorf("report: series %q is listed twice", key)
		}
		keys[key] = true
		n := SeriesFileName(key)
		seen[n]++
		if seen[n] > 1 {
			n += "_" + strconv.Itoa(seen[n])
		}
		out[i] = n
	}
	return out, nil
}

// timeAxis sets up p's x axis for Unix seconds.
func timeAxis(p *plot.Plot) {
	p.X.Tick.Marker = timeTicks{}
	p.X.Label.Text = "time (UTC)"
}

// timeTicks puts major ticks on round UTC times (whole hours, days...),
// at most about 7 of them, with minor ticks between.
type timeTicks struct{}

var tickSteps = []time.Duration{
	time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour,
	30 * 24 * time.Hour, 91 * 24 * time.Hour, 365 * 24 * time.Hour,
}

// Ticks implements plot.Ticker.
func (timeTicks) Ticks(lo, hi float64) []plot.Tick {
	span := time.Duration((hi - lo) * 1e9)
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if span/s <= 7 {
			step = s
			break
		}
	}
	minor := step / 4
	if step == 7*24*time.Hour || step == 14*24*time.Hour {
		minor = 24 * time.Hour
	}
	format := "2006-01-02\n15:04"
	switch {
	case step >= 24*time.Hour:
		format = "2006-01-02"
	case step < time.Minute:
		format = "15:04:05"
	}
	var out []plot.Tick
	sec := int64(minor / time.Second)
	if sec < 1 {
		sec = 1
	}
	for t := int64(math.Ceil(lo/float64(sec))) * sec; float64(t) <= hi; t += sec {
		tick := plot.Tick{Value: float64(t)}
		if t%int64(step/time.Second) == 0 {
			tick.Label = time.Unix(t, 0).UTC().Format(format)
		}
		out = append(out, tick)
	}
	return out
}

// headroom raises the top of p's y axis so the legend does not cover the
// data.
func headroom(p *plot.Plot, share float64) {
	if r := p.Y.Max - p.Y.Min; r > 0 {
		p.Y.Max += share * r
	}
}

func secs(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// segments splits (t, v) into lines at NaN values and at time steps longer
// than 1.5 times the most common step, so gaps show as gaps.
func segments(ts []time.Time, vs []float64) []plotter.XYs {
	step := typicalStep(ts)
	var out []plotter.XYs
	var cur plotter.XYs
	for i := range ts {
		if math.IsNaN(vs[i]) || math.IsInf(vs[i], 0) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		if len(cur) > 0 && step > 0 && ts[i].Sub(ts[i-1]) > step*3/2 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, plotter.XY{X: secs(ts[i]), Y: vs[i]})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func typicalStep(ts []time.Time) time.Duration {
	count := map[time.Duration]int{}
	var best time.Duration
	for i := 1; i < len(ts); i++ {
		d := ts[i].Sub(ts[i-1])
		if d <= 0 {
			continue
		}
		count[d]++
		if count[d] > count[best] || (count[d] == count[best] && d < best) {
			best = d
		}
	}
	return best
}

// addLine adds the segments of one named line; single points are drawn as
// dots so they do not vanish.
func addLine(p *plot.Plot, name string, ts []time.Time, vs []float64, c color.Color, dashed bool) error {
	first := true
	for _, seg := range segments(ts, vs) {
		var thumb plot.Thumbnailer
		if len(seg) == 1 {
			s, err := plotter.NewScatter(seg)
			if err != nil {
				return err
			}
			s.GlyphStyle.Color = c
			s.GlyphStyle.Shape = draw.CircleGlyph{}
			s.GlyphStyle.Radius = vg.Points(1.5)
			p.Add(s)
			thumb = s
		} else {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return err
			}
			l.LineStyle.Color = c
			l.LineStyle.Width = vg.Points(1.2)
			if dashed {
				l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			p.Add(l)
			thumb = l
		}
		if first && name != "" {
			p.Legend.Add(name, thumb)
			first = false
		}
	}
	return nil
}

// stack draws plots one above the other on dc.
func stack(dc draw.Canvas, plots ...*plot.Plot) {
	rows := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		rows[i] = []*plot.Plot{p}
	}
	t := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	cs := plot.Align(rows, t, dc)
	for i, p := range plots {
		p.Draw(cs[i][0])
	}
}

func drawForecast(dc draw.Canvas, series, model string, pts []query.ForecastPoint) error {
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
	top.Title.Text = fmt.Sprintf("%s: forecast and actual (model %s)", series, model)
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

// syncX gives plots the same x range.
func syncX(ps ...*plot.Plot) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range ps {
		lo, hi = min(lo, p.X.Min), max(hi, p.X.Max)
	}
	for _, p := range ps {
		p.X.Min, p.X.Max = lo, hi
	}
}

func drawImputed(dc draw.Canvas, series, model string, raw []query.ForecastPoint, imp []query.ImputedPoint) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d filled gaps over the series (model %s)", series, len(imp), model)
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

// lossPanel is one loss over time, one line per topic partition.
type lossPanel struct {
	name  string
	lines []lossLine
}

type lossLine struct {
	name string
	ts   []time.Time
	vs   []float64
}

// lossPanels groups steps into one panel per loss that has values.
func lossPanels(steps []query.TrainLoss) []lossPanel {
	type key struct{ topic, part string }
	var keys []key
	by := map[key][]query.TrainLoss{}
	for _, s := range steps {
		k := key{s.Topic, s.Partition}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], s)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		x, _ := strconv.Atoi(a.part)
		y, _ := strconv.Atoi(b.part)
		if x != y {
			return x - y
		}
		return strings.Compare(a.part, b.part)
	})
	var out []lossPanel
	for _, l := range []struct {
		name string
		get  func(query.TrainLoss) float64
	}{
		{"loss_forecast", func(s query.TrainLoss) float64 { return s.LossForecast }},
		{"loss_impute", func(s query.TrainLoss) float64 { return s.LossImpute }},
		{"loss_contrast", func(s query.TrainLoss) float64 { return s.LossContrast }},
	} {
		panel := lossPanel{name: l.name}
		for _, k := range keys {
			line := lossLine{name: k.topic + "/" + k.part}
			has := false
			ss := by[k]
			sort.SliceStable(ss, func(i, j int) bool { return ss[i].Time.Before(ss[j].Time) })
			for _, s := range ss {
				v := l.get(s)
				line.ts = append(line.ts, s.Time)
				line.vs = append(line.vs, v)
				has = has || !math.IsNaN(v)
			}
			if has {
				panel.lines = append(panel.lines, line)
			}
		}
		if len(panel.lines) > 0 {
			out = append(out, panel)
		}
	}
	return out
}

func drawLosses(dc draw.Canvas, model string, panels []lossPanel) error {
	var plots []*plot.Plot
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.name
		if i == 0 {
			p.Title.Text = fmt.Sprintf("training losses of model %s (prequential, normalised units): %s", model, pn.name)
		}
		p.Y.Label.Text = "loss"
		p.Legend.Top = true
		timeAxis(p)
		for j, l := range pn.lines {
			name := ""
			if len(pn.lines) <= 8 { // a legend of more says nothing
				name = "topic/partition " + l.name
			}
			// Training steps come at irregular times: join every point.
			xys := make(plotter.XYs, 0, len(l.ts))
			for k := range l.ts {
				if !math.IsNaN(l.vs[k]) {
					xys = append(xys, plotter.XY{X: secs(l.ts[k]), Y: l.vs[k]})
				}
			}
			ln, err := plotter.NewLine(xys)
			if err != nil {
				return err
			}
			ln.LineStyle.Color = plotutil.Color(j)
			ln.LineStyle.Width = vg.Points(1.2)
			p.Add(ln)
			if name != "" {
				p.Legend.Add(name, ln)
			}
		}
		headroom(p, 0.1*float64(min(len(pn.lines), 8)))
		plots = append(plots, p)
	}
	syncX(plots...)
	stack(dc, plots...)
	return nil
}

// commonDim keeps the embeddings of the most common dimension (a model
// whose dimension changed leaves series of both).
func commonDim(embs []query.Embedding) []query.Embedding {
	count := map[int]int{}
	best := 0
	for _, e := range embs {
		d := len(e.Vector)
		count[d]++
		if count[d] > count[best] || (count[d] == count[best] && d > best) {
			best = d
		}
	}
	var out []query.Embedding
	for _, e := range embs {
		if len(e.Vector) == best {
			out = append(out, e)
		}
	}
	return out
}

// PCA projects the rows of x (n × d) on their first k principal components
// (centred, by SVD), and returns the projection (n × k) and the share of
// the variance each component explains. Components beyond the rank are 0.
func PCA(x *mat.Dense, k int) (*mat.Dense, []float64, error) {
	n, d := x.Dims()
	c := mat.DenseCopyOf(x)
	for j := 0; j < d; j++ {
		var mean float64
		for i := 0; i < n; i++ {
			mean += c.At(i, j)
		}
		mean /= float64(n)
		for i := 0; i < n; i++ {
			c.Set(i, j, c.At(i, j)-mean)
		}
	}
	var svd mat.SVD
	if !svd.Factorize(c, mat.SVDThin) {
		return nil, nil, errors.New("PCA: SVD did not converge")
	}
	var v mat.Dense
	svd.VTo(&v)
	sv := svd.Values(nil)
	var total float64
	for _, s := range sv {
		total += s * s
	}
	out := mat.NewDense(n, k, nil)
	share := make([]float64, k)
	for j := 0; j < k && j < len(sv); j++ {
		if total > 0 {
			share[j] = sv[j] * sv[j] / total
		}
		for i := 0; i < n; i++ {
			var s float64
			for m := 0; m < d; m++ {
				s += c.At(i, m) * v.At(m, j)
			}
			out.Set(i, j, s)
		}
	}
	return out, share, nil
}

func drawPCA(dc draw.Canvas, model string, embs []query.Embedding) error {
	d := len(embs[0].Vector)
	x := mat.NewDense(len(embs), d, nil)
	for i, e := range embs {
		x.SetRow(i, e.Vector)
	}
	proj, share, err := PCA(x, 2)
	if err != nil {
		return err
	}
	var meas []string
	groups := map[string]plotter.XYs{}
	labels := map[string][]string{}
	for i, e := range embs {
		m := e.Measurement()
		if _, ok := groups[m]; !ok {
			meas = append(meas, m)
		}
		groups[m] = append(groups[m], plotter.XY{X: proj.At(i, 0), Y: proj.At(i, 1)})
		labels[m] = append(labels[m], e.Series)
	}
	sort.Strings(meas)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("latest embeddings of %d series (model %s, dimension %d): PCA", len(embs), model, d)
	p.X.Label.Text = fmt.Sprintf("PC1 (%.0f%% of variance)", 100*share[0])
	p.Y.Label.Text = fmt.Sprintf("PC2 (%.0f%% of variance)", 100*share[1])
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	for i, m := range meas {
		s, err := plotter.NewScatter(groups[m])
		if err != nil {
			return err
		}
		s.GlyphStyle.Color = plotutil.Color(i)
		s.GlyphStyle.Shape = filledShapes[i%len(filledShapes)]
		s.GlyphStyle.Radius = vg.Points(4)
		p.Add(s)
		p.Legend.Add(m, s)
		if len(embs) <= 40 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: groups[m], Labels: labels[m]})
			if err != nil {
				return err
			}
			for j := range l.TextStyle {
				l.TextStyle[j].Font.Size = vg.Points(7)
				l.TextStyle[j].Color = plotutil.Color(i)
			}
			l.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(2)}
			p.Add(l)
		}
	}
	// Room for the labels on the right and the legend at the top.
	if r := p.X.Max - p.X.Min; r > 0 {
		p.X.Min -= 0.05 * r
		p.X.Max += 0.3 * r
	}
	if r := p.Y.Max - p.Y.Min; r > 0 {
		p.Y.Min -= 0.05 * r
		p.Y.Max += 0.05*r + 0.06*float64(len(meas))*r
	}
	stack(dc, p)
	return nil
}

var filledShapes = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}}

// Colours of the lines; the palette of plotutil for the rest.
var (
	colActual   color.Color = color.RGBA{R: 50, G: 50, B: 50, A: 255}
	colForecast             = plotutil.Color(2) // blue
	colError                = plotutil.Color(0) // red
	colBaseline color.Color = color.RGBA{R: 150, G: 150, B: 150, A: 255}
	colImputed              = plotutil.Color(0)
)

func newCanvas(img *vgimg.Canvas) draw.Canvas { return draw.New(img) }
