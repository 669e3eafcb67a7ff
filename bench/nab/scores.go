package nab

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tsrep/tsrep/dataset"
)

// LoadScores reads a detector's anomaly scores for every file of the corpus
// from dir, in NAB's results layout: dir/<category>/<name>.csv, or with the
// detector's name as a prefix, dir/<category>/<detector>_<name>.csv (what
// NAB writes). Each file is a CSV with a timestamp column and an
// anomaly_score column (or a single value column), one row per row of the
// data file, at the same times. Other files in dir (NAB's score summaries)
// are ignored.
func LoadScores(dir string, c *Corpus) (Scores, error) {
	s := make(Scores, len(c.Files))
	for _, f := range c.Files {
		p, err := findScoreFile(dir, f.Name)
		if err != nil {
			return nil, err
		}
		fr, err := dataset.ReadCSV(p, dataset.CSVOptions{TimeColumn: "timestamp"})
		if err != nil {
			return nil, fmt.Errorf("nab scores: %w", err)
		}
		col := slices.Index(fr.Names, "anomaly_score")
		if col < 0 {
			if len(fr.Names) != 1 {
				return nil, fmt.Errorf("nab scores: %s has no anomaly_score column (columns: %s)", p, strings.Join(fr.Names, ", "))
			}
			col = 0
		}
		if len(fr.Time) != len(f.Time) {
			return nil, fmt.Errorf("nab scores: %s has %d rows, the data file %s has %d", p, len(fr.Time), f.Name, len(f.Time))
		}
		for i, t := range fr.Time {
			if t != f.Time[i] {
				return nil, fmt.Errorf("nab scores: %s: row %d is at another time than the data file's", p, i+2)
			}
		}
		s[f.Name] = fr.Cols[col]
	}
	return s, nil
}

// findScoreFile finds the results file of the data file name under dir.
func findScoreFile(dir, name string) (string, error) {
	cat, base := path.Split(name)
	d := filepath.Join(dir, filepath.FromSlash(cat))
	p := filepath.Join(d, base)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	ents, err := os.ReadDir(d)
	if err != nil {
		return "", fmt.Errorf("nab scores: no results for %s: %w", name, err)
	}
	var found []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), "_"+base) {
			found = append(found, filepath.Join(d, e.Name()))
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("nab scores: no results for %s: neither %s nor %s exists", name, p, filepath.Join(d, "<detector>_"+base))
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("nab scores: several results for %s: %s", name, strings.Join(found, ", "))
}
