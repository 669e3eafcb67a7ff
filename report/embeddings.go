package report

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/tsrep/tsrep/query"
)

// The embedding plots compare what `tsrep query similar` compares:
// latest embeddings of one encoder version, by its similarity (query.Rank's
// scaled cosine). A 2-D
// projection of them (a PCA) would show distances the ranking does not
// use, and embeddings of different versions side by side, which are not
// comparable.

// maxHeat is the most series the heat map shows.
const maxHeat = 24

// atText names the time of the latest embeddings in a title.
func atText(at time.Time) string {
	if at.IsZero() {
		return "latest embeddings"
	}
	return "latest embeddings at or before " + at.UTC().Format("2006-01-02 15:04")
}

// similarPlot draws similar_<name>.png: the K series most similar
// to key within the version of its newest embedding, as `tsrep query
// similar` ranks them.
func (w *writer) similarPlot(ctx context.Context, c *query.Client, o Options, key, name string, at time.Time) error {
	file := "similar_" + name + ".png"
	q, ms, err := c.SimilarOfVersion(ctx, key, at, o.K, o.Model, query.NewestVersion)
	switch {
	case errors.Is(err, query.ErrNoData):
		w.skip(file, "no embedding of series %q with model %q (learners without an encoder write none)", key, o.Model)
		return nil
	case err != nil && q.Series != "" && len(q.Vector) > 0:
		w.skip(file, "%v", err) // a zero vector
		return nil
	case err != nil:
		return fmt.Errorf("report: similar series of %q: %w", key, err)
	case len(ms) == 0:
		w.skip(file, "no other series has an embedding of encoder version %d (the version of %q's newest)", q.Version, key)
		return nil
	}
	return w.save(file, 30*vg.Centimeter, max(12*vg.Centimeter, vg.Length(6+len(ms))*vg.Centimeter*7/10), func(dc draw.Canvas) error {
		return drawSimilar(dc, o.Model, q, ms, at)
	})
}

func drawSimilar(dc draw.Canvas, model string, q query.Embedding, ms []query.Match, at time.Time) error {
	vals := make(plotter.Values, len(ms))
	labels := make([]string, len(ms))
	for i, m := range ms {
		// The best at the top: the y axis counts from the bottom.
		j := len(ms) - 1 - i
		vals[j] = m.Score
		labels[j] = fmt.Sprintf("%d. %s", i+1, shorten(m.Series, 60))
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("the %d series most similar to %s (model %s)\nencoder version %d, %s: what `tsrep query similar` ranks",
		len(ms), shorten(q.Series, 60), model, q.Version, atText(at))
	p.X.Label.Text = "similarity of the embeddings (cosine, each dimension scaled by its spread across the series)"
	p.X.Min, p.X.Max = -1, 1
	bars, err := plotter.NewBarChart(vals, vg.Points(14))
	if err != nil {
		return err
	}
	bars.Horizontal = true
	bars.Color = colBars
	bars.LineStyle.Width = 0
	p.Add(plotter.NewGrid(), bars)
	p.NominalY(labels...)
	for i := range ms {
		l, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{{X: vals[i], Y: float64(i)}},
			Labels: []string{strconv.FormatFloat(vals[i], 'f', 3, 64)},
		})
		if err != nil {
			return err
		}
		l.Offset = vg.Point{X: vg.Points(4), Y: -vg.Points(3)}
		if vals[i] < 0 {
			l.Offset.X = vg.Points(-30)
		}
		l.TextStyle[0].Font.Size = vg.Points(8)
		p.Add(l)
	}
	stack(dc, p)
	return nil
}

// cosinePlot draws embeddings_cosine.png: the similarities (as tsrep query
// similar scores them, see similarityGrid) between the latest embeddings
// of one version (the version most series' newest embedding has) of up to
// maxHeat series: the report's, then their nearest neighbours.
func (w *writer) cosinePlot(ctx context.Context, c *query.Client, o Options, at time.Time) error {
	const file = "embeddings_cosine.png"
	newest, err := c.LatestEmbeddings(ctx, at, o.Model)
	if err != nil {
		return fmt.Errorf("report: embeddings: %w", err)
	}
	if len(newest) == 0 {
		w.skip(file, "0 series with embeddings of model %q (learners without an encoder write none)", o.Model)
		return nil
	}
	v := commonVersion(newest)
	embs, err := c.LatestEmbeddingsOfVersion(ctx, at, o.Model, v)
	if err != nil {
		return fmt.Errorf("report: embeddings of version %d: %w", v, err)
	}
	embs = commonDim(embs)
	if len(embs) < 2 {
		w.skip(file, "%d series with embeddings of model %q of encoder version %d (a comparison needs 2)", len(embs), o.Model, v)
		return nil
	}
	var keys []string
	for _, s := range o.Series {
		k, _ := query.CanonicalSeries(s)
		keys = append(keys, k)
	}
	sel := heatSeries(embs, keys, maxHeat)
	n := vg.Length(len(sel))
	return w.save(file, max(26*vg.Centimeter, 16*vg.Centimeter+n*9*vg.Millimeter), 12*vg.Centimeter+n*7*vg.Millimeter, func(dc draw.Canvas) error {
		return drawCosine(dc, o.Model, v, at, similarityGrid(sel, embs), sel, len(embs))
	})
}

// commonVersion is the version most series' newest embedding has (ties:
// the newer).
func commonVersion(embs []query.Embedding) int64 {
	count := map[int64]int{}
	best := embs[0].Version
	for _, e := range embs {
		count[e.Version]++
		if n := count[e.Version]; n > count[best] || (n == count[best] && e.Version > best) {
			best = e.Version
		}
	}
	return best
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
		if len(e.Vector) == best && norm(e.Vector) > 0 {
			out = append(out, e)
		}
	}
	return out
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// heatSeries picks at most n of embs: all if there are no more; else
// the series of want, then in turn each one's nearest neighbour not yet
// picked, then the rest by key. The pick is sorted by key, which groups
// series by measurement.
func heatSeries(embs []query.Embedding, want []string, n int) []query.Embedding {
	if len(embs) <= n {
		return embs
	}
	by := map[string]query.Embedding{}
	for _, e := range embs {
		by[e.Series] = e
	}
	picked := map[string]bool{}
	var out []query.Embedding
	add := func(e query.Embedding) {
		if len(out) < n && !picked[e.Series] {
			picked[e.Series] = true
			out = append(out, e)
		}
	}
	var ranks [][]query.Match
	for _, k := range want {
		if e, ok := by[k]; ok {
			add(e)
			ranks = append(ranks, query.Rank(e, embs, n))
		}
	}
	for i := 0; len(out) < n && i < n; i++ {
		for _, r := range ranks {
			if i < len(r) {
				add(by[r[i].Series])
			}
		}
	}
	for _, e := range embs {
		add(e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out
}

// cosineGrid is the matrix of cosine similarities as a plotter.GridXYZ:
// column c and row r are series c and r, row 0 at the top.
type cosineGrid struct{ z [][]float64 }

func (g cosineGrid) Dims() (c, r int)        { return len(g.z), len(g.z) }
func (g cosineGrid) Z(c, r int) float64      { return g.z[len(g.z)-1-r][c] }
func (g cosineGrid) X(c int) float64         { return float64(c) }
func (g cosineGrid) Y(r int) float64         { return float64(r) }
func (g cosineGrid) Min() float64            { return -1 }
func (g cosineGrid) Max() float64            { return 1 }
func (g cosineGrid) series(r int) int        { return len(g.z) - 1 - r }
func (g cosineGrid) at(row, col int) float64 { return g.z[row][col] }

// labelTicks puts one labelled tick on each integer 0..len-1.
type labelTicks []string

// Ticks implements plot.Ticker.
func (t labelTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for i, l := range t {
		if v := float64(i); v >= lo-0.5 && v <= hi+0.5 {
			out = append(out, plot.Tick{Value: v, Label: l})
		}
	}
	return out
}

// similarityGrid is the similarity of every pair of sel as tsrep query
// similar scores it: the cosine with each dimension scaled by 1 over its
// standard deviation across all the embeddings of the version (the
// population Rank scales by when any one of them is the query).
func similarityGrid(sel, all []query.Embedding) cosineGrid {
	pop := make([][]float64, len(all))
	for i, e := range all {
		pop[i] = e.Vector
	}
	w := query.Scales(pop)
	g := cosineGrid{z: make([][]float64, len(sel))}
	for i := range sel {
		g.z[i] = make([]float64, len(sel))
		for j := range sel {
			// Rounding takes a vector's cosine with itself to 1 + 1e-16,
			// outside the colour map.
			g.z[i][j] = max(-1, min(1, query.ScaledCosine(sel[i].Vector, sel[j].Vector, w)))
		}
	}
	return g
}

func drawCosine(dc draw.Canvas, model string, version int64, at time.Time, g cosineGrid, sel []query.Embedding, total int) error {
	n := len(sel)
	cm := moreland.SmoothBlueRed()
	cm.SetMin(-1)
	cm.SetMax(1)
	hm := plotter.NewHeatMap(g, cm.Palette(255))
	hm.Min, hm.Max = -1, 1

	p := plot.New()
	shown := fmt.Sprintf("all %d series of the version", n)
	if n < total {
		shown = fmt.Sprintf("%d of the %d series (the report's and their nearest)", n, total)
	}
	p.Title.Text = fmt.Sprintf("similarity (cosine, dimensions scaled by their spread) of the %s of encoder version %d\n(model %s; %s; other versions are not comparable)\n"+
		"row i from high to low: tsrep query similar <series i> --version %d",
		atText(at), version, model, shown, version)
	p.Add(hm)
	ylabels := make(labelTicks, n)
	xlabels := make(labelTicks, n)
	for r := 0; r < n; r++ {
		i := g.series(r)
		ylabels[r] = fmt.Sprintf("%s  %d", shorten(sel[i].Series, 48), i+1)
	}
	for c := 0; c < n; c++ {
		xlabels[c] = strconv.Itoa(c + 1)
	}
	p.Y.Tick.Marker = ylabels
	p.X.Tick.Marker = xlabels
	p.X.Label.Text = "series (numbered as the rows)"
	p.Y.Tick.Label.Font.Size = vg.Points(8)
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	if n <= 16 {
		for r := 0; r < n; r++ {
			for c := 0; c < n; c++ {
				v := g.Z(c, r)
				l, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: float64(c), Y: float64(r)}}, Labels: []string{strconv.FormatFloat(v, 'f', 2, 64)}})
				if err != nil {
					return err
				}
				l.TextStyle[0].Font.Size = vg.Points(7)
				l.TextStyle[0].XAlign, l.TextStyle[0].YAlign = draw.XCenter, draw.YCenter
				if math.Abs(v) > 0.6 {
					l.TextStyle[0].Color = color.White
				}
				p.Add(l)
			}
		}
	}

	bar := plot.New()
	bar.HideY()
	bar.X.Label.Text = "similarity (cosine, each dimension scaled by its spread across the version's series)"
	bar.Add(&plotter.ColorBar{ColorMap: cm})

	h := dc.Max.Y - dc.Min.Y
	barH := 2 * vg.Centimeter
	stack(draw.Crop(dc, 0, 0, barH, 0), p)
	stack(draw.Crop(dc, 0, 0, 0, -(h-barH)), bar)
	return nil
}

// shorten cuts s to at most n runes, with "…" in the middle.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	half := (n - 1) / 2
	return string(r[:half]) + "…" + strings.TrimSpace(string(r[len(r)-(n-1-half):]))
}
