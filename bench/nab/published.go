package nab

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// Published is NAB's scoreboard (results/final_results.json): each
// detector's normalised score by profile.
type Published map[string]map[string]float64

// LoadPublished reads final_results.json.
func LoadPublished(path string) (Published, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nab scoreboard: %w", err)
	}
	var p Published
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("nab scoreboard %s: %w", path, err)
	}
	return p, nil
}

// detectorNames are the scoreboard's names of NAB's detector keys.
var detectorNames = map[string]string{
	"ARTime":            "ARTime",
	"contextOSE":        "CAD OSE",
	"earthgeckoSkyline": "earthgecko Skyline",
	"expose":            "EXPoSE",
	"htmjava":           "HTM Java",
	"knncad":            "KNN CAD",
	"null":              "null",
	"numenta":           "Numenta HTM",
	"numentaTM":         "Numenta TM HTM",
	"random":            "random",
	"randomCutForest":   "Random Cut Forest",
	"relativeEntropy":   "Relative Entropy",
	"skyline":           "Skyline",
	"twitterADVec":      "Twitter ADVec",
	"windowedGaussian":  "Windowed Gaussian",
}

// DisplayName is the scoreboard's name of a detector key of
// final_results.json.
func DisplayName(key string) string {
	if n, ok := detectorNames[key]; ok {
		return n
	}
	return key
}

// Entry is one line of a profile's scoreboard.
type Entry struct {
	Detector string  `json:"detector"`
	Score    float64 `json:"score"`
	// Published is false for the detector measured in this run.
	Published bool `json:"published"`
}

// Board returns the published detectors' scores under profile with the
// measured one added, best first.
func (p Published) Board(profile, name string, score float64) []Entry {
	out := []Entry{{Detector: name, Score: score}}
	for key, byProfile := range p {
		if v, ok := byProfile[profile]; ok {
			out = append(out, Entry{Detector: DisplayName(key), Score: v, Published: true})
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Detector, b.Detector))
	})
	return out
}
