package nab

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tsrep/tsrep/internal/testenv"
)

// loadBundled reads the bundled corpus and profiles.
func loadBundled(t *testing.T) (string, *Corpus, []Profile) {
	t.Helper()
	dir := testenv.DataFile(t, "NAB")
	c, err := LoadCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := LoadProfiles(filepath.Join(dir, "results", "profiles.json"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, c, ps
}

// TestPublishedWindowedGaussian scores NAB's published per-row scores of the
// windowedGaussian detector (bench nab --scores) and checks the normalised
// scores against NAB's scoreboard (39.65 / 20.87 / 47.41), the thresholds
// against thresholds.json, and each file's raw score and counts against
// NAB's per-file summaries.
func TestPublishedWindowedGaussian(t *testing.T) {
	dir := testenv.DataFile(t, "NAB")
	wg := filepath.Join(dir, "results", "windowedGaussian")
	rep, err := Bench(Options{Dir: dir, Scores: wg, PerFile: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 58 || rep.Rows != 365558 {
		t.Fatalf("corpus: %d files, %d rows; want 58 and 365558", rep.Files, rep.Rows)
	}
	pub, err := LoadPublished(filepath.Join(dir, "results", "final_results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Profiles) != 3 {
		t.Fatalf("%d profiles, want 3", len(rep.Profiles))
	}
	for i, p := range rep.Profiles {
		r := p.Result
		want := pub["windowedGaussian"][p.Profile.Name]
		t.Logf("%-18s threshold %.4f raw %.4f null %.1f perfect %.1f normalised %.4f (published %.4f)",
			p.Profile.Name, r.Threshold, r.Score, r.Null, r.Perfect, r.Normalised, want)
		if p.Profile.Name != ProfileNames[i] {
			t.Errorf("profile %d is %s, want %s", i, p.Profile.Name, ProfileNames[i])
		}
		if math.Abs(r.Normalised-want) > 0.1 {
			t.Errorf("%s: normalised score %.4f, NAB publishes %.4f", p.Profile.Name, r.Normalised, want)
		}
		if r.Threshold != 1 {
			t.Errorf("%s: threshold %v, NAB's thresholds.json has 1.0", p.Profile.Name, r.Threshold)
		}
		if r.Windows != 116 {
			t.Errorf("%s: %d windows, want 116", p.Profile.Name, r.Windows)
		}
		checkSummary(t, filepath.Join(wg, "windowedGaussian_"+p.Profile.Name+"_scores.csv"), r)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "windowedGaussian <") || !strings.Contains(buf.String(), "Windowed Gaussian") {
		t.Errorf("the table does not show the scored detector next to the published one:\n%s", buf.String())
	}
}

// checkSummary compares each file's score and counts with NAB's summary.
func checkSummary(t *testing.T, path string, r *Result) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string]FileScore{}
	for _, fs := range r.Files {
		byFile[fs.File] = fs
	}
	n := 0
	for _, rec := range recs[1:] {
		if rec[0] == "Totals" {
			continue
		}
		got, ok := byFile[rec[2]]
		if !ok {
			t.Errorf("%s: NAB scores %s, not in the corpus", r.Profile, rec[2])
			continue
		}
		n++
		score, _ := strconv.ParseFloat(rec[4], 64)
		var counts [4]int
		for k := range counts {
			counts[k], _ = strconv.Atoi(rec[5+k])
		}
		if math.Abs(got.Score-score) > 1e-6 || counts != [4]int{got.TP, got.TN, got.FP, got.FN} {
			t.Errorf("%s %s: score %.6f tp/tn/fp/fn %d/%d/%d/%d; NAB: %.6f %v",
				r.Profile, got.File, got.Score, got.TP, got.TN, got.FP, got.FN, score, counts)
		}
	}
	if n != len(r.Files) {
		t.Errorf("%s: NAB's summary has %d files, the corpus %d", r.Profile, n, len(r.Files))
	}
}

// TestSweepRules checks the scoring rules on a synthetic file: the first
// detection in a window counts, the earliest earns the full weight,
// detections past a window cost less the closer they are, and the
// probationary rows are not scored.
func TestSweepRules(t *testing.T) {
	p := Profile{Name: "standard", TP: 1, FP: 0.11, FN: 1}
	mk := func(n int, wins ...Window) *Corpus {
		f := &File{Name: "x.csv", Time: make([]int64, n), Values: make([]float64, n), Probation: Probation(n), Windows: wins}
		for i := range f.Time {
			f.Time[i] = int64(i)
		}
		return &Corpus{Files: []*File{f}, Windows: len(wins)}
	}
	score := func(c *Corpus, det ...int) float64 {
		s := make([]float64, len(c.Files[0].Time))
		for _, i := range det {
			s[i] = 1
		}
		r, err := c.ScoreAt(Scores{"x.csv": s}, p, 1)
		if err != nil {
			t.Fatal(err)
		}
		return r.Score
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: %.9f, want %.9f", name, got, want)
		}
	}
	c := mk(100, Window{Left: 40, Right: 49}) // probation: 15 rows
	near("nothing detected", score(c), -1)
	near("left edge", score(c, 40), 1)
	near("only the first detection counts", score(c, 45, 40, 49), 1)
	near("right edge", score(c, 49), scaledSigmoid(-0.1)/maxTP)
	near("far false positive", score(c, 90), -1-0.11)
	near("false positive before any window", score(c, 20), -1-0.11)
	near("false positive just past the window", score(c, 50), -1+0.11*scaledSigmoid(1.0/9))
	near("probation not scored", score(c, 3), -1)
	near("scaled sigmoid at the edges", scaledSigmoid(0), 0)
	near("scaled sigmoid far", scaledSigmoid(3.5), -1)
	if Probation(10000) != 750 || Probation(4032) != 604 {
		t.Errorf("probation %d %d, want 750 604", Probation(10000), Probation(4032))
	}
	// A window wholly inside the probationary period is not counted.
	near("window in probation", score(mk(100, Window{Left: 2, Right: 5})), 0)
}
