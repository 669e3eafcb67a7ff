// Package nab scores streaming anomaly detectors by the rules of the
// Numenta Anomaly Benchmark (NAB v1.1, github.com/numenta/NAB) and runs
// tsrep's own anomaly score over its corpus.
//
// The scorer follows NAB's description and its sweeper (nab/sweeper.py,
// nab/optimizer.py, nab/runner.py):
//
//   - Each labelled anomaly window is a range of rows of its file. A row
//     whose score reaches the threshold is a detection.
//   - Only the first detection inside a window counts, weighted by the
//     scaled sigmoid of its position: 2/(1+e^{5x})-1 at x = -(right-i+1)/width,
//     divided by its value at x = -1 so that the earliest detection earns
//     the profile's full true-positive weight and one at the right edge
//     almost nothing. A window without a detection costs the
//     false-negative weight.
//   - Every detection outside a window is a false positive weighted by the
//     same sigmoid of its distance past the end of the preceding window,
//     relative to that window's width (−1 when it is far, or when no window
//     precedes it), times the false-positive weight.
//   - The first rows of each file, min(⌊0.15·rows⌋, 750), are the
//     probationary period: not scored, and a window lying wholly inside it
//     counts for nothing.
//   - One threshold per profile is chosen for the whole corpus: the scores
//     are swept from the highest distinct value down, and the threshold
//     with the largest summed score wins (the highest one on a tie).
//   - The summed score is normalised to 100·(S − S_null)/(S_perfect −
//     S_null), where the null detector flags nothing and the perfect one
//     detects every labelled window at its left edge.
package nab

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tsrep/tsrep/dataset"
)

// ProbationPercent is NAB's share of each file held out of scoring.
const ProbationPercent = 0.15

// Probation is the number of leading rows of a file of n rows that NAB
// does not score: 15 %, at most 750 (NAB's getProbationPeriod).
func Probation(n int) int {
	return int(math.Min(math.Floor(ProbationPercent*float64(n)), ProbationPercent*5000))
}

// Corpus is the labelled NAB data: every file's timestamps and values, and
// its anomaly windows resolved to rows.
type Corpus struct {
	// Files are sorted by name.
	Files []*File
	// Windows is the number of labelled windows: what the perfect detector
	// detects.
	Windows int
}

// File is one data file of the corpus.
type File struct {
	// Name is the path under data/, with forward slashes
	// ("realKnownCause/nyc_taxi.csv"): NAB's key of the file.
	Name   string
	Time   []int64 // each row's time, Unix ns
	Values []float64
	// Windows are the file's labelled windows as row ranges.
	Windows []Window
	// Probation is the number of leading rows not scored.
	Probation int
}

// Window is a labelled anomaly window resolved to rows of its file the way
// NAB's sweeper does: entered at the row whose time is the window's start,
// left at the row whose time is its end; Left and Right are the first rows
// with those times, Width = Right − Left + 1.
type Window struct {
	Start, End  int64 // the labels' times, Unix ns
	Left, Right int   // rows
}

// Width is the number of rows the window spans.
func (w Window) Width() int { return w.Right - w.Left + 1 }

// labelLayout is the layout of the times in NAB's label files.
const labelLayout = "2006-01-02 15:04:05.999999"

// LoadCorpus reads the corpus under dir (NAB's layout: dir/data/<category>/
// <name>.csv and dir/labels/combined_windows.json). The files are those of
// the labels file.
func LoadCorpus(dir string) (*Corpus, error) {
	labels, err := loadWindows(filepath.Join(dir, "labels", "combined_windows.json"))
	if err != nil {
		return nil, err
	}
	c := &Corpus{}
	names := make([]string, 0, len(labels))
	for name := range labels {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fr, err := dataset.ReadCSV(filepath.Join(dir, "data", filepath.FromSlash(name)), dataset.CSVOptions{TimeColumn: "timestamp"})
		if err != nil {
			return nil, fmt.Errorf("nab corpus: %w", err)
		}
		col := slices.Index(fr.Names, "value")
		if col < 0 {
			return nil, fmt.Errorf("nab corpus: %s has no value column", name)
		}
		f := &File{Name: name, Time: fr.Time, Values: fr.Cols[col], Probation: Probation(fr.Rows())}
		if f.Windows, err = resolveWindows(f.Time, labels[name]); err != nil {
			return nil, fmt.Errorf("nab corpus: %s: %w", name, err)
		}
		c.Files = append(c.Files, f)
		c.Windows += len(labels[name])
	}
	if len(c.Files) == 0 {
		return nil, fmt.Errorf("nab corpus: no files in the labels under %s", dir)
	}
	return c, nil
}

// File returns the corpus file named name, or nil.
func (c *Corpus) File(name string) *File {
	i, ok := slices.BinarySearchFunc(c.Files, name, func(f *File, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return nil
	}
	return c.Files[i]
}

// Rows is the number of rows of all files.
func (c *Corpus) Rows() int {
	n := 0
	for _, f := range c.Files {
		n += len(f.Time)
	}
	return n
}

// loadWindows reads a combined_windows.json: file name → [start, end] pairs.
func loadWindows(path string) (map[string][][2]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nab labels: %w", err)
	}
	var raw map[string][][]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("nab labels %s: %w", path, err)
	}
	out := make(map[string][][2]int64, len(raw))
	for name, ws := range raw {
		lims := make([][2]int64, 0, len(ws))
		for _, w := range ws {
			if len(w) != 2 {
				return nil, fmt.Errorf("nab labels %s: %s: a window has %d limits, want 2", path, name, len(w))
			}
			var lim [2]int64
			for k, s := range w {
				t, err := time.Parse(labelLayout, s)
				if err != nil {
					return nil, fmt.Errorf("nab labels %s: %s: %w", path, name, err)
				}
				lim[k] = t.UnixNano()
			}
			lims = append(lims, lim)
		}
		out[filepath.ToSlash(name)] = lims
	}
	return out, nil
}

// resolveWindows finds each window's rows by NAB's rule: its limits must be
// times of rows of the file, and the first row with each time is taken.
func resolveWindows(ts []int64, lims [][2]int64) ([]Window, error) {
	ws := make([]Window, 0, len(lims))
	for _, l := range lims {
		left, right := slices.Index(ts, l[0]), slices.Index(ts, l[1])
		if left < 0 || right < left {
			return nil, fmt.Errorf("window %s..%s does not match the file's rows",
				time.Unix(0, l[0]).UTC().Format(time.DateTime), time.Unix(0, l[1]).UTC().Format(time.DateTime))
		}
		ws = append(ws, Window{Start: l[0], End: l[1], Left: left, Right: right})
	}
	slices.SortFunc(ws, func(a, b Window) int { return a.Left - b.Left })
	for i := 1; i < len(ws); i++ {
		if ws[i].Left <= ws[i-1].Right {
			return nil, fmt.Errorf("windows overlap at row %d", ws[i].Left)
		}
	}
	return ws, nil
}
