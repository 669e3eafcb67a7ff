package quality

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/models"
)

// ForecastOptions configure the online forecasting measurement.
type ForecastOptions struct {
	Common
	Path string
	CSV  dataset.CSVOptions
	// Train, Val and Test are the split sizes (row counts or fractions).
	Train, Val, Test string
	// Length is the window length (the windows have stride 1).
	Length int
	// AROrder and ARForgetting configure the RLS baseline.
	AROrder      int
	ARForgetting float64
}

// ForecastResult is the outcome of RunForecast.
type ForecastResult struct {
	Data     string   `json:"data"`
	Columns  []string `json:"columns"`
	Split    Split    `json:"split"`
	Length   int      `json:"length"`
	Epochs   int      `json:"epochs"`
	Steps    uint64   `json:"train_steps"`
	Figures  []Figure `json:"figures"`
	Seconds  float64  `json:"seconds"`
	Protocol string   `json:"protocol"`
}

// Published online forecasting MSE at horizon 1 (FSNet protocol), from the
// OneNet paper (Wen et al., NeurIPS 2023), table 1.
var publishedForecast = map[string][]Figure{
	"etth2": {
		{Method: "PatchTST (online)", MSE: 0.362},
		{Method: "OneNet", MSE: 0.380},
		{Method: "FSNet", MSE: 0.466},
	},
}

// RunForecast runs the FSNet online protocol: columns are z-scored by the
// training rows; the learner learns from the training rows (Epochs passes:
// Epochs-1 warm-up passes over them, under separate series keys, then the
// main pass over the whole file), keeps learning unscored over the
// validation rows, and over the test rows predicts each next value before
// learning from it. MSE and MAE are in normalised units, averaged over all
// channels and steps. In the same pass over the same windows: the
// repeat-the-last-value baseline, an online RLS AR(AROrder) per channel
// (models.Forecaster: running-normalised lags, predicts before learning the
// window's newest point), and the learner's linear path alone (relativeAR).
func RunForecast(o ForecastOptions) (*ForecastResult, error) {
	t0 := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Length <= o.AROrder {
		return nil, fmt.Errorf("window length %d must exceed the baseline's AR order %d", o.Length, o.AROrder)
	}
	run, err := o.openCSV(o.Path, o.CSV, o.Train, o.Val, o.Test, o.Length)
	if err != nil {
		return nil, err
	}
	fr, sp, end, ssl, maxSeries := run.fr, run.sp, run.end, run.ssl, run.maxSeries
	ar := models.NewForecaster(models.ForecasterConfig{
		Name: "rls", Order: o.AROrder, Forgetting: o.ARForgetting, MaxSeries: len(fr.Cols),
	})
	if err := o.warmUp("forecast", run); err != nil {
		return nil, err
	}

	// Main pass.
	testFrom, testTo := fr.Time[sp.Train+sp.Val], fr.Time[end-1]
	var learner, naive, rls, rel acc
	pSSL := models.NewPrequential(maxSeries)
	pAR := models.NewPrequential(maxSeries)
	pRel := models.NewPrequential(maxSeries)
	relAR := newRelativeAR(o.AROrder, o.ARForgetting)
	var relOut models.Output
	s := newRowStream(o.Model.Multichannel, o.Length, 1, o.BatchSize, maxSeries, func(b *models.Batch, rec arrow.RecordBatch) error {
		out, err := ssl.Step(rec)
		if err != nil {
			return err
		}
		for _, r := range pSSL.Observe(b, out) {
			if r.Time >= testFrom && r.Time <= testTo {
				learner.add(r.Predicted, r.Actual)
				naive.add(r.Baseline, r.Actual)
			}
		}
		out, err = ar.Step(rec)
		if err != nil {
			return err
		}
		for _, r := range pAR.Observe(b, out) {
			if r.Time >= testFrom && r.Time <= testTo {
				rls.add(r.Predicted, r.Actual)
			}
		}
		relOut.Forecast = relAR.step(b, relOut.Forecast)
		for _, r := range pRel.Observe(b, &relOut) {
			if r.Time >= testFrom && r.Time <= testTo {
				rel.add(r.Predicted, r.Actual)
			}
		}
		return nil
	})
	defer s.close()
	k := keys(fr.Names, "main")
	for _, ph := range []struct {
		name     string
		from, to int
	}{{"train", 0, sp.Train}, {"val", sp.Train, sp.Train + sp.Val}, {"test", sp.Train + sp.Val, end}} {
		if err := s.rows(fr, k, ph.from, ph.to, nil); err != nil {
			return nil, err
		}
		o.logf("forecast: %s rows done, %d steps, %.0fs", ph.name, ssl.Steps(), time.Since(t0).Seconds())
	}
	if err := s.flush(); err != nil {
		return nil, err
	}
	if learner.n == 0 {
		return nil, fmt.Errorf("no forecast was scored: the test split (%d rows) is too short", sp.Test)
	}
	res := &ForecastResult{
		Data: o.Path, Columns: fr.Names, Split: sp, Length: o.Length, Epochs: o.Epochs, Steps: ssl.Steps(),
		Protocol: "FSNet online, horizon 1: z-score on train rows; learn on train, learn unscored on val, " +
			"predict-then-learn on test; MSE/MAE in z units over all channels and steps",
	}
	res.Figures = append(res.Figures,
		fig(ssl.Name(), "learner", learner),
		fig("repeat last value", "baseline", naive),
		fig(fmt.Sprintf("RLS AR(%d) per channel, forgetting %g (models.Forecaster)", o.AROrder, o.ARForgetting), "baseline", rls),
		fig(fmt.Sprintf("RLS AR(%d) per channel, relative lags (the learner's linear path alone)", o.AROrder), "baseline", rel),
	)
	for _, p := range publishedFor(o.Path, publishedForecast) {
		p.Kind = "published"
		res.Figures = append(res.Figures, p)
	}
	res.Seconds = since(t0)
	return res, nil
}

// publishedFor returns the published figures of the data set the file is
// (see dataIs).
func publishedFor(path string, table map[string][]Figure) []Figure {
	for name, figs := range table {
		if dataIs(path, name) {
			return figs
		}
	}
	return nil
}

// dataIs reports whether the file's base name starts with the data set's
// name, ignoring case.
func dataIs(path, name string) bool {
	return strings.HasPrefix(strings.ToLower(filepath.Base(path)), name)
}
