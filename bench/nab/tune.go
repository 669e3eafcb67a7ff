package nab

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tsrep/tsrep/models"
)

// trace is a file's scored points with what their anomaly scores are
// computed from: recorded in one pass of the learner, then replayed under
// other anomaly settings (the learner does not depend on them).
type trace struct {
	key  string
	pts  []models.AnomalyPoint // Embedding nil: see emb
	emb  []float64             // len(pts)×dim, if embeddings are kept
	keep bool                  // keep the embeddings
	dim  int
	ivl  int64
}

func (t *trace) add(b *models.Batch, out *models.Output, res []models.Resolved) {
	for _, r := range res {
		if t.key == "" {
			t.key = strings.Clone(b.Key(r.Row))
		}
		t.pts = append(t.pts, models.AnomalyPoint{Time: r.Time, Actual: r.Actual, Predicted: r.Predicted, Baseline: r.Baseline})
		if t.keep && out.Dim > 0 && len(out.Embedding) >= (r.Row+1)*out.Dim {
			t.dim = out.Dim
			t.emb = append(t.emb, out.Embedding[r.Row*out.Dim:(r.Row+1)*out.Dim]...)
		}
	}
}

// replay scores the recorded points under acfg and returns each row's
// score, as runFile would have.
func (t *trace) replay(f *File, acfg models.AnomalyConfig) ([]float64, error) {
	acfg.MaxSeries = 1
	an, err := models.NewAnomaly(acfg)
	if err != nil {
		return nil, err
	}
	if t.dim > 0 && len(t.emb) != len(t.pts)*t.dim {
		return nil, fmt.Errorf("trace of %s: %d embedding values for %d points", f.Name, len(t.emb), len(t.pts))
	}
	bySlot := make(map[int64]float64, len(t.pts))
	for i := range t.pts {
		p := t.pts[i]
		if t.dim > 0 {
			p.Embedding = t.emb[i*t.dim : (i+1)*t.dim]
		}
		bySlot[p.Time] = an.Point(t.key, &p).Score
	}
	scores := make([]float64, len(f.Time))
	if t.ivl > 0 {
		for i, ts := range f.Time {
			scores[i] = bySlot[slotTime(ts, t.ivl)]
		}
	}
	return scores, nil
}

// DefaultGrid is the grid the anomaly score's defaults were chosen on, from
// base: the range tolerance (0 turns the range channel off), the memory of
// the error histogram and the novelty channel off or on.
func DefaultGrid(base models.AnomalyConfig) []models.AnomalyConfig {
	var g []models.AnomalyConfig
	for _, rt := range []float64{0, 0.005, 0.02, 0.05} {
		for _, th := range []int{1000, 4000} {
			for _, k := range []int{0, 8} {
				a := base
				a.RangeTolerance, a.TailHorizon, a.NoveltyK = rt, th, k
				g = append(g, a)
			}
		}
	}
	return g
}

// GridPoint is one setting of a grid and its normalised scores.
type GridPoint struct {
	Anomaly models.AnomalyConfig `json:"anomaly"`
	// Scores holds the normalised score under each profile of the
	// report, in order.
	Scores []float64 `json:"scores"`
}

// GridReport is the outcome of a grid.
type GridReport struct {
	Model    string      `json:"model"`
	Forecast string      `json:"forecast,omitempty"`
	Profiles []string    `json:"profiles"`
	Points   []GridPoint `json:"points"`
	// Best is the chosen point: the highest score under the first profile
	// (standard), ties broken by the mean over the profiles.
	Best    int     `json:"best"`
	Seconds float64 `json:"seconds"`
}

// Grid runs the learner over the corpus once, recording what the anomaly
// score is computed from, then scores the corpus under each anomaly
// setting of grid, for every profile, and picks the best (see GridReport).
// The same settings hold for every file.
func Grid(o Options, grid []models.AnomalyConfig) (*GridReport, error) {
	t0 := time.Now()
	if len(grid) == 0 {
		return nil, fmt.Errorf("nab grid: no settings")
	}
	c, err := LoadCorpus(o.Dir)
	if err != nil {
		return nil, err
	}
	ps, err := LoadProfiles(filepath.Join(o.Dir, "results", "profiles.json"))
	if err != nil {
		return nil, err
	}
	cfg, err := streamConfig(o.Run.Config)
	if err != nil {
		return nil, err
	}
	if err := checkForecast(o.Run.Forecast); err != nil {
		return nil, err
	}
	keep := slices.ContainsFunc(grid, func(a models.AnomalyConfig) bool { return a.NoveltyK > 0 })
	traces := make([]*trace, len(c.Files))
	for i, f := range c.Files {
		traces[i] = &trace{keep: keep}
		if _, fr, err := runFile(cfg, grid[0], o.Run.Forecast, f, traces[i]); err != nil {
			return nil, fmt.Errorf("nab grid %s: %w", f.Name, err)
		} else if o.Run.Log != nil {
			fmt.Fprintf(o.Run.Log, "nab grid: recorded %-58s %6d points, %.1fs\n", f.Name, len(traces[i].pts), fr.Seconds)
		}
	}
	rep := &GridReport{Model: cfg.Model.Kind, Forecast: o.Run.Forecast}
	for _, p := range ps {
		rep.Profiles = append(rep.Profiles, p.Name)
	}
	for _, g := range grid {
		s := make(Scores, len(c.Files))
		for i, f := range c.Files {
			if s[f.Name], err = traces[i].replay(f, g); err != nil {
				return nil, err
			}
		}
		gp := GridPoint{Anomaly: g}
		for _, p := range ps {
			r, err := c.Score(s, p)
			if err != nil {
				return nil, err
			}
			gp.Scores = append(gp.Scores, math.Round(r.Normalised*100)/100)
		}
		rep.Points = append(rep.Points, gp)
		if o.Run.Log != nil {
			fmt.Fprintf(o.Run.Log, "nab grid: range tolerance %g, tail horizon %d, novelty k %d: %v\n",
				g.RangeTolerance, g.TailHorizon, g.NoveltyK, gp.Scores)
		}
	}
	mean := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	for i, p := range rep.Points {
		b := rep.Points[rep.Best]
		if c := cmp.Or(cmp.Compare(p.Scores[0], b.Scores[0]), cmp.Compare(mean(p.Scores), mean(b.Scores))); c > 0 {
			rep.Best = i
		}
	}
	rep.Seconds = math.Round(time.Since(t0).Seconds()*10) / 10
	return rep, nil
}

// WriteTable prints the grid, the chosen point marked.
func (g *GridReport) WriteTable(w io.Writer) error {
	fc := ""
	if g.Forecast != "" && g.Forecast != ForecastLearner {
		fc = ", scoring the forecast " + g.Forecast
	}
	fmt.Fprintf(w, "NAB grid over the anomaly settings, learner %s%s (one learner pass, then each setting replayed); %.1fs\n", g.Model, fc, g.Seconds)
	fmt.Fprintf(w, "choice: the highest %s score, ties broken by the mean over the profiles\n\n", g.Profiles[0])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "range_tolerance\ttail_horizon\tnovelty_k\t%s\t\n", strings.Join(g.Profiles, "\t"))
	for i, p := range g.Points {
		mark := ""
		if i == g.Best {
			mark = " <"
		}
		cells := make([]string, len(p.Scores))
		for j, v := range p.Scores {
			cells[j] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(tw, "%g\t%d\t%d\t%s%s\t\n", p.Anomaly.RangeTolerance, p.Anomaly.TailHorizon, p.Anomaly.NoveltyK, strings.Join(cells, "\t"), mark)
	}
	return tw.Flush()
}
