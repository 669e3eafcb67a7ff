package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/tsrep/tsrep/query"
)

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

func drawLosses(dc draw.Canvas, model, rng string, panels []lossPanel) error {
	var plots []*plot.Plot
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.name
		if i == 0 {
			p.Title.Text = fmt.Sprintf("training losses of model %s (prequential, normalised units, %s): %s", model, rng, pn.name)
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
