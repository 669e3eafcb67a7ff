// Package report draws PNG plots of what tsrep wrote to InfluxDB, read back
// through package query:
//
//	forecast_<series>.png    forecast next to actual, and the absolute error
//	imputed_<series>.png     the filled gaps over the series' actual values
//	anomaly_<series>.png     the anomaly score (tsrep_anomaly) over time, and
//	                         the points that scored high on the series
//	similar_<series>.png     the series most similar to it, within
//	                         one encoder version: what `tsrep query similar`
//	                         ranks
//	losses.png               the training losses over time (tsrep_train)
//	embeddings_cosine.png    the similarities between series' latest
//	                         embeddings of one encoder version (the scaled
//	                         cosine tsrep query similar ranks by), as a heat
//	                         map
//
// The plots of time show the last Options.Days days of each series' data
// unless a range is given: a two-year hourly series drawn whole is a smear.
// The embedding plots are of the latest embeddings (at or before To).
//
// A plot whose data is missing (a learner that writes no embeddings or
// imputes nothing, a series without forecasts in the range) is skipped
// and the reason reported; it is not an error.
package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/query"
)

// Options says what to draw.
type Options struct {
	// Series are the series keys of the per-series plots.
	Series []string
	// From and To bound every plot of time to [From, To); zero is
	// unbounded. The embedding plots use the latest embeddings before To.
	From, To time.Time
	// Days, when From is zero and Days > 0, starts the plots of time Days
	// days before To, or when To is zero before the end of the data (a
	// series' newest forecast, anomaly score or filled gap; for losses.png
	// the newest of the series'). 0 draws everything.
	Days float64
	// K is the number of series in similar_<series>.png (default 10).
	K int
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

// HighScore is the anomaly score from which anomaly_<series>.png marks a
// point on the series.
const HighScore = 0.5

// writer saves the plots of one Write.
type writer struct {
	dir string
	res Result
}

func (w *writer) save(name string, width, height vg.Length, drawFn func(draw.Canvas) error) error {
	img := vgimg.New(width, height)
	if err := drawFn(draw.New(img)); err != nil {
		return fmt.Errorf("report: draw %s: %w", name, err)
	}
	path := filepath.Join(w.dir, name)
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
	w.res.Files = append(w.res.Files, path)
	return nil
}

func (w *writer) skip(name, format string, a ...any) {
	w.res.Skipped = append(w.res.Skipped, name+": "+fmt.Sprintf(format, a...))
}

// Write queries c and writes the plots of o into o.Dir. File names are
// deterministic: see the package comment; <series> is SeriesFileName.
func Write(ctx context.Context, c *query.Client, o Options) (Result, error) {
	w := &writer{dir: o.Dir}
	if o.Model == "" {
		return w.res, errors.New("report: model is empty: set model.name in the config or pass --model")
	}
	if o.Dir == "" {
		return w.res, errors.New("report: output directory is empty: pass --out DIR")
	}
	if o.Days < 0 {
		return w.res, fmt.Errorf("report: days is %v: give 0 (everything) or more", o.Days)
	}
	if o.K == 0 {
		o.K = 10
	}
	names, err := fileNames(o.Series)
	if err != nil {
		return w.res, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return w.res, fmt.Errorf("report: create output directory: %w", err)
	}
	at := o.To
	if !at.IsZero() {
		at = at.Add(-time.Nanosecond)
	}

	var dataEnd time.Time // the newest point of any series, for losses.png
	for i, s := range o.Series {
		key, _ := query.CanonicalSeries(s)
		end, err := seriesEnd(ctx, c, key, o.Model)
		if err != nil {
			return w.res, fmt.Errorf("report: series %q: %w", key, err)
		}
		if end.After(dataEnd) {
			dataEnd = end
		}
		from, to := o.rangeOf(end)
		if err := w.seriesPlots(ctx, c, o, key, names[i], from, to); err != nil {
			return w.res, err
		}
		if err := w.similarPlot(ctx, c, o, key, names[i], at); err != nil {
			return w.res, err
		}
	}

	from, to := o.rangeOf(dataEnd)
	steps, err := c.TrainLosses(ctx, o.Model, from, to)
	if err != nil {
		return w.res, fmt.Errorf("report: training losses: %w", err)
	}
	panels := lossPanels(steps)
	if len(panels) == 0 {
		if len(steps) == 0 {
			w.skip("losses.png", "no training steps of model %q (%s)", o.Model, rangeText(from, to))
		} else {
			w.skip("losses.png", "the %d training steps of model %q carry no losses", len(steps), o.Model)
		}
	} else if err := w.save("losses.png", 30*vg.Centimeter, vg.Length(len(panels))*8*vg.Centimeter, func(dc draw.Canvas) error {
		return drawLosses(dc, o.Model, rangeText(from, to), panels)
	}); err != nil {
		return w.res, err
	}

	if err := w.cosinePlot(ctx, c, o, at); err != nil {
		return w.res, err
	}
	return w.res, nil
}

// rangeOf is the range of the plots of time of a series whose data ends
// at end (zero: unknown).
func (o Options) rangeOf(end time.Time) (from, to time.Time) {
	from, to = o.From, o.To
	if !from.IsZero() || o.Days <= 0 {
		return from, to
	}
	anchor := to
	if anchor.IsZero() {
		if end.IsZero() {
			return from, to
		}
		anchor = end.Add(time.Nanosecond) // end is the last point: keep it
	}
	return anchor.Add(-time.Duration(o.Days * float64(24*time.Hour))), to
}

// rangeText names [from, to) in a title or a sentence.
func rangeText(from, to time.Time) string {
	f := func(t time.Time) string {
		if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
			return t.UTC().Format(time.DateOnly)
		}
		return t.UTC().Format("2006-01-02 15:04")
	}
	switch {
	case from.IsZero() && to.IsZero():
		return "all the data"
	case to.IsZero():
		return "since " + f(from)
	case from.IsZero():
		return "before " + f(to)
	}
	return "between " + f(from) + " and " + f(to)
}

// seriesEnd is the time of the newest forecast, anomaly score or filled
// gap of exactly the series (zero: none).
func seriesEnd(ctx context.Context, c *query.Client, key, model string) (time.Time, error) {
	id, err := ingest.ParseSeriesKey(key)
	if err != nil {
		return time.Time{}, err
	}
	list, err := c.ListSeries(ctx, model, query.SeriesFilter{Measurement: id.Measurement, Field: id.Field, Tags: id.Tags})
	if err != nil {
		return time.Time{}, err
	}
	var end time.Time
	for _, s := range list {
		if s.Series != key {
			continue // a series with more tags
		}
		for out, t := range s.Latest {
			if out != "embedding" && t.After(end) {
				end = t
			}
		}
	}
	return end, nil
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
