package nab

import (
	"fmt"
	"io"
	"math"
	"path"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/bench/quality"
	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/pipeline"
	"github.com/tsrep/tsrep/windowing"
)

// RunOptions configure Run.
type RunOptions struct {
	// Config supplies the window and model settings, as the pipeline reads
	// them; Run sets the stride to 1 so that every point is forecast.
	Config config.Config
	// Anomaly configures the anomaly score; its MaxSeries is ignored (one
	// series per file).
	Anomaly models.AnomalyConfig
	// Forecast is the forecast whose error the anomaly score sees: the
	// learner's (ForecastLearner, the default), the repeat-last-value
	// baseline made at the same moment (ForecastLast), or none
	// (ForecastNone: the error channel sees no error, so only the range
	// and novelty channels speak). The last two measure what the
	// learner's forecasts add.
	Forecast string
	// Log receives a line per file (nil: none).
	Log io.Writer
}

// Forecasts the anomaly score can be given (RunOptions.Forecast).
const (
	ForecastLearner = "learner"
	ForecastLast    = "last"
	ForecastNone    = "none"
)

// FileRun is what a run did on one file.
type FileRun struct {
	File    string  `json:"file"`
	Rows    int     `json:"rows"`
	Scored  int     `json:"scored"` // rows with a score from the learner
	Windows uint64  `json:"windows"`
	Seconds float64 `json:"seconds"`
}

// Run streams every file of the corpus through the pipeline's path: the
// windowing stage (stride 1), a fresh learner built as pipeline.NewLearner
// builds it (NAB's files are independent streams), models.Prequential and
// a fresh models.Anomaly, one pass per file. Each row gets the score of
// the point at its slot; rows without one (before the first window, in a
// window too sparse to be emitted, or a point dropped as late) score 0.
func Run(c *Corpus, o RunOptions) (Scores, []FileRun, error) {
	cfg, err := streamConfig(o.Config)
	if err != nil {
		return nil, nil, err
	}
	if err := checkForecast(o.Forecast); err != nil {
		return nil, nil, err
	}
	s := make(Scores, len(c.Files))
	runs := make([]FileRun, 0, len(c.Files))
	for _, f := range c.Files {
		sc, fr, err := runFile(cfg, o.Anomaly, o.Forecast, f, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("nab run %s: %w", f.Name, err)
		}
		s[f.Name] = sc
		runs = append(runs, fr)
		if o.Log != nil {
			fmt.Fprintf(o.Log, "nab: %-58s %6d rows, %6d scored, %.1fs\n", f.Name, fr.Rows, fr.Scored, fr.Seconds)
		}
	}
	return s, runs, nil
}

func checkForecast(f string) error {
	switch f {
	case "", ForecastLearner, ForecastLast, ForecastNone:
		return nil
	}
	return fmt.Errorf("nab: forecast %q is not one of %s, %s, %s", f, ForecastLearner, ForecastLast, ForecastNone)
}

// streamConfig is cfg with stride 1, validated.
func streamConfig(cfg config.Config) (config.Config, error) {
	cfg.Window.Stride = 1
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("nab: configuration: %w", err)
	}
	return cfg, nil
}

// seriesKey is the series key of a file's points: measurement nab, tag
// file, field value (as `tsrep produce --measurement nab --tags file=NAME`
// would write them).
func seriesKey(name string) []byte {
	base := strings.TrimSuffix(path.Base(name), ".csv")
	return []byte("nab,file=" + base + "#value")
}

// runFile runs one file and returns each row's score, the anomaly score
// seeing the forecast named by forecast. If tr is not nil, it records
// every scored point's inputs in it.
func runFile(cfg config.Config, acfg models.AnomalyConfig, forecast string, f *File, tr *trace) ([]float64, FileRun, error) {
	t0 := time.Now()
	fr := FileRun{File: f.Name, Rows: len(f.Time)}
	learner, err := pipeline.NewLearner(cfg)
	if err != nil {
		return nil, fr, err
	}
	acfg.MaxSeries = 1
	an, err := models.NewAnomaly(acfg)
	if err != nil {
		return nil, fr, err
	}
	preq := models.NewPrequential(1)
	bySlot := make(map[int64]float64, len(f.Time))
	var ivl int64
	st := quality.NewStream(windowing.Config{
		Interval:    cfg.Window.Interval.Duration,
		Length:      cfg.Window.Length,
		Stride:      1,
		Lateness:    cfg.Window.Lateness.Duration,
		MinObserved: cfg.Window.MinObserved,
		BatchSize:   cfg.Window.BatchSize,
		MaxSeries:   1,
	}, func(b *models.Batch, rec arrow.RecordBatch) error {
		out, err := learner.Step(rec)
		if err != nil {
			return err
		}
		fr.Windows += uint64(b.Rows)
		res := preq.Observe(b, out)
		for i := range res { // res is ours until the next Observe
			switch forecast {
			case ForecastLast:
				res[i].Predicted = res[i].Baseline
			case ForecastNone:
				res[i].Predicted = res[i].Actual
			}
		}
		if tr != nil {
			tr.add(b, out, res)
		}
		for _, sc := range an.Observe(b, out, res) {
			bySlot[sc.Time] = sc.Score
			ivl = int64(b.Interval[sc.Row])
		}
		return nil
	})
	defer st.Close()
	key := seriesKey(f.Name)
	for i, t := range f.Time {
		if math.IsNaN(f.Values[i]) {
			continue
		}
		if err := st.Add(key, t, f.Values[i]); err != nil {
			return nil, fr, err
		}
	}
	if err := st.Flush(); err != nil {
		return nil, fr, err
	}
	scores := make([]float64, len(f.Time))
	if ivl > 0 {
		for i, t := range f.Time {
			if v, ok := bySlot[slotTime(t, ivl)]; ok {
				scores[i] = v
				fr.Scored++
			}
		}
	}
	if tr != nil {
		tr.ivl = ivl
	}
	fr.Seconds = math.Round(time.Since(t0).Seconds()*100) / 100
	return scores, fr, nil
}

// slotTime is the time of the windowing slot nearest t (the windowing
// stage's rounding, for t ≥ 0).
func slotTime(t, ivl int64) int64 { return (t + ivl/2) / ivl * ivl }
