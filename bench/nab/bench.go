package nab

import (
	"errors"
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

// Options configure Bench.
type Options struct {
	// Dir is the NAB directory: data/, labels/ and results/ (profiles.json,
	// final_results.json).
	Dir string
	// Scores, if set, is a directory of another detector's scores (see
	// LoadScores) to score instead of running tsrep.
	Scores string
	// Run configures tsrep's run (unused with Scores).
	Run RunOptions
	// PerFile keeps each profile's per-file scores in the report.
	PerFile bool
}

// Report is a benchmark's outcome.
type Report struct {
	// Detector names what was scored: "tsrep (<model>)" or the scores
	// directory.
	Detector string `json:"detector"`
	Files    int    `json:"files"`
	Rows     int    `json:"rows"`
	// Scored is the number of rows tsrep scored (the others score 0:
	// before a series' first window, in windows too sparse to emit).
	Scored int `json:"scored_rows,omitempty"`
	// Settings are the window, model and anomaly settings of tsrep's run.
	Settings *Settings       `json:"settings,omitempty"`
	Profiles []ProfileReport `json:"profiles"`
	Seconds  float64         `json:"seconds"`
	Protocol string          `json:"protocol"`
}

// Settings are what a tsrep run used.
type Settings struct {
	Model          string               `json:"model"`
	Forecast       string               `json:"forecast,omitempty"`
	WindowLength   int                  `json:"window_length"`
	WindowInterval string               `json:"window_interval"`
	MinObserved    float64              `json:"window_min_observed"`
	Anomaly        models.AnomalyConfig `json:"anomaly"`
}

// ProfileReport is the outcome under one profile: the measured detector's
// result and the scoreboard with it.
type ProfileReport struct {
	Profile Profile `json:"profile"`
	Result  *Result `json:"result"`
	// Rank is the measured detector's place on Board, from 1.
	Rank  int     `json:"rank"`
	Board []Entry `json:"board"`
}

// protocol describes the scoring for the report.
const protocol = "NAB v1.1 scoring (nab/sweeper.py): windows from labels/combined_windows.json, first detection " +
	"per window weighted by the scaled sigmoid of its position, false positives by the sigmoid of their distance " +
	"past the preceding window, probationary period min(15% of rows, 750) not scored, one threshold per profile " +
	"optimised over the corpus, normalised 100·(S−S_null)/(S_perfect−S_null)"

// Bench scores tsrep (or the detector in o.Scores) on the NAB corpus under
// every profile and ranks it among NAB's published detectors.
func Bench(o Options) (*Report, error) {
	t0 := time.Now()
	c, err := LoadCorpus(o.Dir)
	if err != nil {
		return nil, err
	}
	ps, err := LoadProfiles(filepath.Join(o.Dir, "results", "profiles.json"))
	if err != nil {
		return nil, err
	}
	pub, err := LoadPublished(filepath.Join(o.Dir, "results", "final_results.json"))
	if err != nil {
		return nil, err
	}
	rep := &Report{Files: len(c.Files), Rows: c.Rows(), Protocol: protocol}
	var s Scores
	if o.Scores != "" {
		if s, err = LoadScores(o.Scores, c); err != nil {
			return nil, err
		}
		rep.Detector = filepath.Base(filepath.Clean(o.Scores))
	} else {
		cfg := o.Run.Config
		if cfg.Model.Kind == "none" {
			return nil, errors.New("nab: the null learner (model none) makes no forecasts, so no point is scored; use ssl or rls")
		}
		var runs []FileRun
		if s, runs, err = Run(c, o.Run); err != nil {
			return nil, err
		}
		for _, r := range runs {
			rep.Scored += r.Scored
		}
		rep.Detector = "tsrep (" + cfg.Model.Kind + ")"
		if f := o.Run.Forecast; f != "" && f != ForecastLearner {
			rep.Detector = "tsrep (" + cfg.Model.Kind + ", forecast " + f + ")"
		}
		rep.Settings = &Settings{
			Model: cfg.Model.Kind, Forecast: o.Run.Forecast, WindowLength: cfg.Window.Length, WindowInterval: cfg.Window.IntervalText,
			MinObserved: cfg.Window.MinObserved, Anomaly: o.Run.Anomaly,
		}
	}
	for _, p := range ps {
		r, err := c.Score(s, p)
		if err != nil {
			return nil, err
		}
		if !o.PerFile {
			r.Files = nil
		}
		board := pub.Board(p.Name, rep.Detector, r.Normalised)
		rank := slices.IndexFunc(board, func(e Entry) bool { return !e.Published }) + 1
		rep.Profiles = append(rep.Profiles, ProfileReport{Profile: p, Result: r, Rank: rank, Board: board})
	}
	rep.Seconds = math.Round(time.Since(t0).Seconds()*10) / 10
	return rep, nil
}

// WriteTable prints the report: the scoreboard with the measured detector,
// one column per profile, sorted by the first profile's score.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "NAB: %s on %d files, %d rows", r.Detector, r.Files, r.Rows)
	if r.Settings != nil {
		st := r.Settings
		a := st.Anomaly
		fmt.Fprintf(w, " (%d scored); window %d (interval %s, min_observed %g), stride 1, a fresh learner per file;"+
			" anomaly: range tolerance %g, tail horizon %d, novelty k %d, warm-up %d",
			r.Scored, st.WindowLength, st.WindowInterval, st.MinObserved, a.RangeTolerance, a.TailHorizon, a.NoveltyK, a.Warmup)
	}
	fmt.Fprintf(w, "; %.1fs\n", r.Seconds)
	fmt.Fprintf(w, "protocol: %s\n\n", r.Protocol)
	for _, p := range r.Profiles {
		res := p.Result
		fmt.Fprintf(w, "%-18s (tp %g, fp %g, fn %g): %.2f, rank %d of %d; threshold %.4f, %d of %d windows detected, %d false-positive rows, raw %.2f (null %.0f, perfect %.0f)\n",
			p.Profile.Name, p.Profile.TP, p.Profile.FP, p.Profile.FN, res.Normalised, p.Rank, len(p.Board),
			res.Threshold, res.WindowsDetected, res.Windows, res.FP, res.Score, res.Null, res.Perfect)
	}
	fmt.Fprintln(w)
	if len(r.Profiles) == 0 {
		return nil
	}
	// One row per detector, in the order of the first profile's board.
	scores := map[string][]string{}
	for i, p := range r.Profiles {
		for _, e := range p.Board {
			if scores[e.Detector] == nil {
				scores[e.Detector] = make([]string, len(r.Profiles))
			}
			scores[e.Detector][i] = fmt.Sprintf("%.2f", e.Score)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"rank", "detector"}
	for _, p := range r.Profiles {
		head = append(head, p.Profile.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for i, e := range r.Profiles[0].Board {
		mark := ""
		if !e.Published {
			mark = " <"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t\n", i+1, e.Detector+mark, strings.Join(scores[e.Detector], "\t"))
	}
	return tw.Flush()
}
