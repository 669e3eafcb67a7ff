package nab

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/models"
)

// smallCorpus is two short files of the bundled corpus.
func smallCorpus(t *testing.T) *Corpus {
	t.Helper()
	_, c, _ := loadBundled(t)
	small := &Corpus{}
	for _, name := range []string{"realAdExchange/exchange-2_cpc_results.csv", "realKnownCause/rogue_agent_key_hold.csv"} {
		f := c.File(name)
		if f == nil {
			t.Fatalf("%s is not in the corpus", name)
		}
		small.Files = append(small.Files, f)
		small.Windows += len(f.Windows)
	}
	return small
}

// TestRunDeterministicAndReplayable: a run scores every file's rows in
// [0, 1], the same way twice, and the grid's record-and-replay path gives
// the very scores of the direct path (windowing, learner, Prequential,
// Anomaly.Observe), novelty included.
func TestRunDeterministicAndReplayable(t *testing.T) {
	c := smallCorpus(t)
	a := models.DefaultAnomalyConfig()
	a.NoveltyK = 4
	o := RunOptions{Config: config.Default(), Anomaly: a}
	s1, runs, err := Run(c, o)
	if err != nil {
		t.Fatal(err)
	}
	s2, _, err := Run(c, o)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := streamConfig(o.Config)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range c.Files {
		if runs[i].Scored < len(f.Time)/2 {
			t.Errorf("%s: %d of %d rows scored", f.Name, runs[i].Scored, len(f.Time))
		}
		tr := &trace{keep: true}
		if _, _, err := runFile(cfg, a, "", f, tr); err != nil {
			t.Fatal(err)
		}
		s3, err := tr.replay(f, a)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range s1[f.Name] {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("%s row %d: score %v", f.Name, k, v)
			}
			if s2[f.Name][k] != v || s3[k] != v {
				t.Fatalf("%s row %d: %v, then %v, replayed %v", f.Name, k, v, s2[f.Name][k], s3[k])
			}
		}
	}
	if _, _, err := Run(c, RunOptions{Config: config.Default(), Anomaly: a, Forecast: "bogus"}); err == nil {
		t.Error("an unknown forecast runs")
	}
}

// TestLoadScoresLayouts: results files are found with or without the
// detector's prefix, and a file of the wrong length or ambiguous name is
// refused.
func TestLoadScoresLayouts(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nab/data/cat/a.csv", "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,2\n2020-01-01 00:10:00,3\n")
	write("nab/labels/combined_windows.json", `{"cat/a.csv": [["2020-01-01 00:05:00.000000", "2020-01-01 00:10:00.000000"]]}`)
	c, err := LoadCorpus(filepath.Join(dir, "nab"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Files[0].Windows; len(w) != 1 || w[0].Left != 1 || w[0].Right != 2 {
		t.Fatalf("windows %+v, want rows 1..2", w)
	}
	rows := "timestamp,anomaly_score\n2020-01-01 00:00:00,0\n2020-01-01 00:05:00,0.5\n2020-01-01 00:10:00,1\n"
	write("plain/cat/a.csv", rows)
	write("prefixed/cat/det_a.csv", "timestamp,value,anomaly_score,label\n2020-01-01 00:00:00,1,0,0\n2020-01-01 00:05:00,2,0.5,1\n2020-01-01 00:10:00,3,1,1\n")
	for _, d := range []string{"plain", "prefixed"} {
		s, err := LoadScores(filepath.Join(dir, d), c)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if got := s["cat/a.csv"]; len(got) != 3 || got[1] != 0.5 || got[2] != 1 {
			t.Errorf("%s: scores %v", d, got)
		}
	}
	write("short/cat/a.csv", "timestamp,anomaly_score\n2020-01-01 00:00:00,0\n")
	write("twice/cat/x_a.csv", rows)
	write("twice/cat/y_a.csv", rows)
	write("missing/cat/b.csv", rows)
	for _, d := range []string{"short", "twice", "missing"} {
		if _, err := LoadScores(filepath.Join(dir, d), c); err == nil {
			t.Errorf("%s: loads", d)
		} else if !strings.Contains(err.Error(), "a.csv") {
			t.Errorf("%s: %v does not name the file", d, err)
		}
	}
	// Scores outside [0, 1] are refused by the scorer.
	if _, err := c.Score(Scores{"cat/a.csv": {0, math.NaN(), 1}}, Profile{Name: "standard", TP: 1, FP: 0.11, FN: 1}); err == nil {
		t.Error("a NaN score is scored")
	}
}
