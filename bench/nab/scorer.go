package nab

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
)

// Profile is a NAB application profile: the weights of its cost matrix.
type Profile struct {
	Name string  `json:"name"`
	TP   float64 `json:"tp_weight"`
	FP   float64 `json:"fp_weight"`
	FN   float64 `json:"fn_weight"`
}

// ProfileNames are NAB's three profiles, in the order results are shown.
var ProfileNames = []string{"standard", "reward_low_FP_rate", "reward_low_FN_rate"}

// LoadProfiles reads NAB's profiles.json; the profiles come back in the
// order of ProfileNames, then any others by name.
func LoadProfiles(path string) ([]Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nab profiles: %w", err)
	}
	var raw map[string]struct {
		CostMatrix map[string]float64
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("nab profiles %s: %w", path, err)
	}
	var ps []Profile
	for name, p := range raw {
		m := p.CostMatrix
		for _, k := range []string{"tpWeight", "fpWeight", "fnWeight"} {
			if _, ok := m[k]; !ok {
				return nil, fmt.Errorf("nab profiles %s: profile %s has no %s", path, name, k)
			}
		}
		ps = append(ps, Profile{Name: name, TP: m["tpWeight"], FP: m["fpWeight"], FN: m["fnWeight"]})
	}
	rank := func(n string) int {
		if i := slices.Index(ProfileNames, n); i >= 0 {
			return i
		}
		return len(ProfileNames)
	}
	slices.SortFunc(ps, func(a, b Profile) int {
		return cmp.Or(cmp.Compare(rank(a.Name), rank(b.Name)), cmp.Compare(a.Name, b.Name))
	})
	if len(ps) == 0 {
		return nil, fmt.Errorf("nab profiles %s: no profile", path)
	}
	return ps, nil
}

// scaledSigmoid is NAB's weight of a detection at relative position x:
// 2·sigmoid(−5x) − 1, so 0.987 at x = −1 (a window's left edge), 0 at its
// right edge, −0.987 one window width past it, and −1 beyond x = 3.
func scaledSigmoid(x float64) float64 {
	if x > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*x)) - 1
}

// maxTP is the weight of the earliest possible detection.
var maxTP = scaledSigmoid(-1)

// Scores holds a detector's anomaly score of every row, by file name.
type Scores map[string][]float64

// Result is a detector's score on the corpus under one profile.
type Result struct {
	Profile   string  `json:"profile"`
	Threshold float64 `json:"threshold"`
	// Score is the summed NAB score of the files at Threshold; Null and
	// Perfect are those of the null and the perfect detector.
	Score      float64 `json:"raw_score"`
	Null       float64 `json:"null_score"`
	Perfect    float64 `json:"perfect_score"`
	Normalised float64 `json:"normalised_score"`
	// Rows counted at the threshold, outside the probationary periods
	// (TP and FN count rows inside windows, not windows).
	TP int `json:"tp"`
	TN int `json:"tn"`
	FP int `json:"fp"`
	FN int `json:"fn"`
	// Windows is the number of labelled windows; WindowsDetected those
	// with a detection.
	Windows         int         `json:"windows"`
	WindowsDetected int         `json:"windows_detected"`
	Files           []FileScore `json:"files,omitempty"`
}

// FileScore is one file's part of a Result.
type FileScore struct {
	File            string  `json:"file"`
	Score           float64 `json:"score"`
	TP              int     `json:"tp"`
	TN              int     `json:"tn"`
	FP              int     `json:"fp"`
	FN              int     `json:"fn"`
	Windows         int     `json:"windows"`
	WindowsDetected int     `json:"windows_detected"`
}

// row is one scorable row of the corpus in the sweep.
type row struct {
	score float64
	win   int32   // corpus-wide window number, -1 outside windows
	sweep float64 // the weighted score if this row is a detection
}

// sweepRows appends the scorable rows of f (NAB's calcSweepScore): each
// row's score, its detection weight under profile p and its window,
// numbered from firstWin.
func sweepRows(dst []row, f *File, s []float64, p Profile, firstWin int) []row {
	w := 0          // next window
	cur := -1       // window the row is in
	prevRight := -1 // right row of the last window left
	prevWidth := 0
	for i := range f.Time {
		if cur < 0 && w < len(f.Windows) && i == f.Windows[w].Left {
			cur = w
			w++
		}
		var sw float64
		if cur >= 0 {
			win := f.Windows[cur]
			sw = scaledSigmoid(-float64(win.Right-i+1)/float64(win.Width())) * p.TP / maxTP
		} else {
			u := -1.0
			if prevRight >= 0 && prevWidth > 1 {
				u = scaledSigmoid(math.Abs(float64(prevRight-i)) / float64(prevWidth-1))
			}
			sw = u * p.FP
		}
		if i >= f.Probation {
			r := row{score: s[i], win: -1, sweep: sw}
			if cur >= 0 {
				r.win = int32(firstWin + cur)
			}
			dst = append(dst, r)
		}
		if cur >= 0 && i == f.Windows[cur].Right {
			prevRight, prevWidth = i, f.Windows[cur].Width()
			cur = -1
		}
	}
	return dst
}

// threshold is the score of the corpus when rows scoring at least t are
// detections.
type threshold struct {
	t, score float64
}

// sweep returns the corpus score at every threshold, from above the
// highest score (nothing detected) down to the lowest (NAB's
// calcScoreByThreshold). rows is reordered.
func sweep(rows []row, windows int, p Profile) []threshold {
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(b.score, a.score) })
	best := make([]float64, windows) // each window's score so far
	scorable := make([]bool, windows)
	var total float64
	for _, r := range rows {
		if r.win >= 0 && !scorable[r.win] {
			scorable[r.win] = true
			best[r.win] = -p.FN
			total -= p.FN
		}
	}
	out := make([]threshold, 0, 1024)
	cur := 1.1 // above every score: nothing is detected
	for _, r := range rows {
		if r.score != cur {
			out = append(out, threshold{cur, total})
			cur = r.score
		}
		if r.win < 0 {
			total += r.sweep
		} else if r.sweep > best[r.win] {
			total += r.sweep - best[r.win]
			best[r.win] = r.sweep
		}
	}
	return append(out, threshold{cur, total})
}

// check verifies that s has a finite score in [0, 1] for every row of
// every file.
func (c *Corpus) check(s Scores) error {
	for _, f := range c.Files {
		v, ok := s[f.Name]
		if !ok {
			return fmt.Errorf("no scores for %s", f.Name)
		}
		if len(v) != len(f.Time) {
			return fmt.Errorf("%s: %d scores for %d rows", f.Name, len(v), len(f.Time))
		}
		for i, x := range v {
			if !(x >= 0 && x <= 1) {
				return fmt.Errorf("%s: row %d: score %v is not in [0, 1]", f.Name, i+2, x)
			}
		}
	}
	return nil
}

// Optimise returns the threshold that maximises the corpus score under p
// (NAB's optimizer: one threshold for the whole corpus) and that score.
func (c *Corpus) Optimise(s Scores, p Profile) (float64, float64, error) {
	if err := c.check(s); err != nil {
		return 0, 0, err
	}
	var rows []row
	nw := 0
	for _, f := range c.Files {
		rows = sweepRows(rows, f, s[f.Name], p, nw)
		nw += len(f.Windows)
	}
	ts := sweep(rows, nw, p)
	best := ts[0]
	for _, t := range ts[1:] {
		if t.score > best.score {
			best = t
		}
	}
	return best.t, best.score, nil
}

// ScoreAt scores every file with detections at scores ≥ t (NAB's
// scoreDataSet at a given threshold).
func (c *Corpus) ScoreAt(s Scores, p Profile, t float64) (*Result, error) {
	if err := c.check(s); err != nil {
		return nil, err
	}
	res := &Result{Profile: p.Name, Threshold: t, Windows: c.Windows}
	var rows []row
	for _, f := range c.Files {
		rows = sweepRows(rows[:0], f, s[f.Name], p, 0)
		fs := FileScore{File: f.Name, Windows: len(f.Windows)}
		best := make([]float64, len(f.Windows))
		seen := make([]bool, len(f.Windows))
		for _, r := range rows {
			det := r.score >= t
			switch {
			case r.win < 0 && det:
				fs.FP++
				fs.Score += r.sweep
			case r.win < 0:
				fs.TN++
			case det:
				fs.TP++
			default:
				fs.FN++
			}
			if r.win >= 0 {
				if !seen[r.win] {
					seen[r.win], best[r.win] = true, -p.FN
				}
				if det && r.sweep > best[r.win] {
					if best[r.win] == -p.FN {
						fs.WindowsDetected++
					}
					best[r.win] = r.sweep
				}
			}
		}
		for k := range best {
			if seen[k] {
				fs.Score += best[k]
			}
		}
		res.Files = append(res.Files, fs)
		res.Score += fs.Score
		res.TP, res.TN, res.FP, res.FN = res.TP+fs.TP, res.TN+fs.TN, res.FP+fs.FP, res.FN+fs.FN
		res.WindowsDetected += fs.WindowsDetected
	}
	return res, nil
}

// Score optimises the threshold of s under p over the corpus, scores the
// corpus at it and normalises the score against the null detector (which
// flags nothing) and the perfect one (every window at its left edge), as
// NAB's runner does.
func (c *Corpus) Score(s Scores, p Profile) (*Result, error) {
	t, _, err := c.Optimise(s, p)
	if err != nil {
		return nil, err
	}
	res, err := c.ScoreAt(s, p, t)
	if err != nil {
		return nil, err
	}
	null, err := c.nullScore(p)
	if err != nil {
		return nil, err
	}
	res.Null = null
	res.Perfect = float64(c.Windows) * p.TP
	res.Normalised = 100 * (res.Score - null) / (res.Perfect - null)
	return res, nil
}

// nullScore is the score of NAB's null detector (a constant score, its
// threshold optimised like any detector's).
func (c *Corpus) nullScore(p Profile) (float64, error) {
	zero := make(Scores, len(c.Files))
	for _, f := range c.Files {
		zero[f.Name] = make([]float64, len(f.Time))
	}
	t, _, err := c.Optimise(zero, p)
	if err != nil {
		return 0, err
	}
	r, err := c.ScoreAt(zero, p, t)
	if err != nil {
		return 0, err
	}
	return r.Score, nil
}
