package quality

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"

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
	// AROrder and ARForgetting configure the RLS baselines: one of each
	// kind per forgetting factor.
	AROrder      int
	ARForgetting []float64
	// Seeds is the number of times the learner runs, with seeds
	// Model.Seed, Model.Seed+1, ...; its figures are the mean over them
	// (0 means 1). The baselines are deterministic and run once.
	Seeds int
}

// ForecastResult is the outcome of RunForecast.
type ForecastResult struct {
	Data    string   `json:"data"`
	Columns []string `json:"columns"`
	Split   Split    `json:"split"`
	Length  int      `json:"length"`
	Epochs  int      `json:"epochs"`
	Steps   uint64   `json:"train_steps"`
	Figures []Figure `json:"figures"`
	// BestRLS is the RLS baseline with the lowest MSE of the run, and
	// LearnerOverBestRLS the learner's MSE divided by it.
	BestRLS            string  `json:"best_rls"`
	LearnerOverBestRLS float64 `json:"learner_mse_over_best_rls"`
	Seconds            float64 `json:"seconds"`
	Protocol           string  `json:"protocol"`
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
// repeat-the-last-value baseline and, at each forgetting factor, an online
// RLS AR(AROrder) per channel (models.Forecaster: running-normalised lags,
// predicts before learning the window's newest point) and the learner's
// linear path alone (relativeAR). With several seeds the learner runs once
// per seed and its figure is the mean; the baselines run with the first.
func RunForecast(o ForecastOptions) (*ForecastResult, error) {
	t0 := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.AROrder = min(o.AROrder, o.Length-2); o.AROrder < 1 {
		return nil, fmt.Errorf("window length %d is too short for an AR baseline", o.Length)
	}
	if len(o.ARForgetting) == 0 {
		return nil, fmt.Errorf("no forgetting factor for the RLS baselines")
	}
	var res *ForecastResult
	var perSeed []Figure
	for s := range max(o.Seeds, 1) {
		oSeed := o
		oSeed.Model.Seed = o.Model.Seed + uint64(s)
		r, learner, err := runForecast(oSeed, s == 0)
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", oSeed.Model.Seed, err)
		}
		if s == 0 {
			res = r
		}
		perSeed = append(perSeed, fig("", "", learner))
	}
	res.Figures[0] = seedFigure(res.Figures[0], perSeed)
	best := -1
	for i, f := range res.Figures {
		if f.Kind == "baseline" && strings.HasPrefix(f.Method, "RLS") && (best < 0 || f.MSE < res.Figures[best].MSE) {
			best = i
		}
	}
	res.BestRLS = res.Figures[best].Method
	res.LearnerOverBestRLS = res.Figures[0].MSE / res.Figures[best].MSE
	res.Seconds = since(t0)
	return res, nil
}

// runForecast is one run of RunForecast: the learner's figure (first) and,
// if baselines, the baselines'.
func runForecast(o ForecastOptions, baselines bool) (*ForecastResult, acc, error) {
	t0 := time.Now()
	run, err := o.openCSV(o.Path, o.CSV, o.Train, o.Val, o.Test, o.Length)
	if err != nil {
		return nil, acc{}, err
	}
	fr, sp, end, ssl, maxSeries := run.fr, run.sp, run.end, run.ssl, run.maxSeries
	if err := o.warmUp("forecast", run); err != nil {
		return nil, acc{}, err
	}
	type rlsBaseline struct {
		ar    *models.Forecaster
		p     *models.Prequential
		score acc
		rel   *relativeAR
		pRel  *models.Prequential
		out   models.Output
		sRel  acc
	}
	var bases []*rlsBaseline
	if baselines {
		for _, f := range o.ARForgetting {
			bases = append(bases, &rlsBaseline{
				ar: models.NewForecaster(models.ForecasterConfig{
					Name: "rls", Order: o.AROrder, Forgetting: f, MaxSeries: len(fr.Cols),
				}),
				p:   models.NewPrequential(maxSeries),
				rel: newRelativeAR(o.AROrder, f), pRel: models.NewPrequential(maxSeries),
			})
		}
	}

	// Main pass.
	testFrom, testTo := fr.Time[sp.Train+sp.Val], fr.Time[end-1]
	var learner, naive acc
	pSSL := models.NewPrequential(maxSeries)
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
		for _, base := range bases {
			out, err = base.ar.Step(rec)
			if err != nil {
				return err
			}
			for _, r := range base.p.Observe(b, out) {
				if r.Time >= testFrom && r.Time <= testTo {
					base.score.add(r.Predicted, r.Actual)
				}
			}
			base.out.Forecast = base.rel.step(b, base.out.Forecast)
			for _, r := range base.pRel.Observe(b, &base.out) {
				if r.Time >= testFrom && r.Time <= testTo {
					base.sRel.add(r.Predicted, r.Actual)
				}
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
			return nil, acc{}, err
		}
		o.logf("forecast: seed %d: %s rows done, %d steps, %.0fs", o.Model.Seed, ph.name, ssl.Steps(), time.Since(t0).Seconds())
	}
	if err := s.flush(); err != nil {
		return nil, acc{}, err
	}
	if learner.n == 0 {
		return nil, acc{}, fmt.Errorf("no forecast was scored: the test split (%d rows) is too short", sp.Test)
	}
	res := &ForecastResult{
		Data: o.Path, Columns: fr.Names, Split: sp, Length: o.Length, Epochs: o.Epochs, Steps: ssl.Steps(),
		Protocol: "FSNet online, horizon 1: z-score on train rows; learn on train, learn unscored on val, " +
			"predict-then-learn on test; MSE/MAE in z units over all channels and steps",
	}
	res.Figures = append(res.Figures, fig(ssl.Name(), "learner", learner))
	if !baselines {
		return res, learner, nil
	}
	res.Figures = append(res.Figures, fig("repeat last value", "baseline", naive))
	for i, base := range bases {
		f := o.ARForgetting[i]
		res.Figures = append(res.Figures,
			fig(fmt.Sprintf("RLS AR(%d) per channel, forgetting %g (models.Forecaster)", o.AROrder, f), "baseline", base.score),
			fig(fmt.Sprintf("RLS AR(%d) per channel, forgetting %g, relative lags (as the learner's linear experts)", o.AROrder, f), "baseline", base.sRel),
		)
	}
	for _, p := range publishedFor(o.Path, publishedForecast) {
		p.Kind = "published"
		res.Figures = append(res.Figures, p)
	}
	return res, learner, nil
}

// seedFigure makes f the mean of the learner's runs at each seed, with
// their spread.
func seedFigure(f Figure, perSeed []Figure) Figure {
	if len(perSeed) < 2 {
		return f
	}
	var mse, mae []float64
	for _, a := range perSeed {
		mse = append(mse, a.MSE)
		mae = append(mae, a.MAE)
	}
	f.MSE, f.MAE = stat.Mean(mse, nil), stat.Mean(mae, nil)
	f.Seeds = &MSESpread{PerSeed: mse, Min: floats.Min(mse), Max: floats.Max(mse), Std: stat.StdDev(mse, nil)}
	return f
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
