package report

import (
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The drawing helpers every plot uses: time axes, lines that break at
// gaps, stacked panels, colours.

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

// Colours of the lines; the palette of plotutil for the rest.
var (
	colActual   color.Color = color.RGBA{R: 50, G: 50, B: 50, A: 255}
	colForecast             = plotutil.Color(2) // blue
	colError                = plotutil.Color(0) // red
	colBaseline color.Color = color.RGBA{R: 150, G: 150, B: 150, A: 255}
	colImputed              = plotutil.Color(0)
	colScore                = plotutil.Color(2) // blue
	colHigh                 = plotutil.Color(0) // red
	colBars                 = plotutil.Color(2)
)
