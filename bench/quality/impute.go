package quality

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/models"
)

// ImputeOptions configure the imputation measurement.
type ImputeOptions struct {
	Common
	Path             string
	CSV              dataset.CSVOptions
	Train, Val, Test string
	Length           int
	// Ratios are the shares of test points hidden, one run each.
	Ratios   []float64
	MaskSeed uint64
	// Seeds is the number of times the learner runs, with seeds
	// Model.Seed, Model.Seed+1, ...; its figures are the mean over them
	// (0 means 1). The masks are the same at every seed.
	Seeds int
}

// ImputeRatio is the outcome at one masking ratio.
type ImputeRatio struct {
	Ratio float64 `json:"ratio"`
	// Hidden is the number of points hidden in the test rows; Scored the
	// number imputed by a window lying wholly in the test rows (each hidden
	// point is written by one window, see models.SSL).
	Hidden  int      `json:"hidden"`
	Scored  int      `json:"scored"`
	Figures []Figure `json:"figures"`
}

// ImputeResult is the outcome of RunImpute.
type ImputeResult struct {
	Data     string        `json:"data"`
	Columns  []string      `json:"columns"`
	Split    Split         `json:"split"`
	Length   int           `json:"length"`
	Epochs   int           `json:"epochs"`
	Steps    uint64        `json:"train_steps"`
	Ratios   []ImputeRatio `json:"ratios"`
	Seconds  float64       `json:"seconds"`
	Protocol string        `json:"protocol"`
}

// Published TimesNet imputation figures on ETTh1 (Wu et al., ICLR 2023,
// table 16): ratio → MSE, MAE.
var publishedImpute = map[string]map[float64][2]float64{
	"etth1": {0.125: {0.057, 0.159}, 0.25: {0.069, 0.178}, 0.375: {0.084, 0.196}, 0.5: {0.102, 0.215}},
}

// RunImpute runs the TimesNet imputation protocol through the pipeline's
// path: columns z-scored by the training rows; the learner learns from the
// training rows (and, unscored, the validation rows); then, for each ratio,
// from the same trained state, the test rows are fed with a share of their
// points hidden (i.i.d. per point) and every window of Length slots lying in
// the test rows is imputed. A hidden point is scored in the window that
// writes it (its middle slot, as the learner writes each gap once); linear
// interpolation and last-observation-carried-forward within that same
// window are the baselines, scored on the same points. With several seeds
// the whole protocol runs once per seed and the learner's figure at each
// ratio is the mean.
func RunImpute(o ImputeOptions) (*ImputeResult, error) {
	t0 := time.Now()
	var res *ImputeResult
	perSeed := map[int][]Figure{}
	for s := range max(o.Seeds, 1) {
		oSeed := o
		oSeed.Model.Seed = o.Model.Seed + uint64(s)
		r, err := runImpute(oSeed)
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", oSeed.Model.Seed, err)
		}
		if s == 0 {
			res = r
		}
		for i, ir := range r.Ratios {
			perSeed[i] = append(perSeed[i], ir.Figures[0])
		}
	}
	for i := range res.Ratios {
		res.Ratios[i].Figures[0] = seedFigure(res.Ratios[i].Figures[0], perSeed[i])
	}
	res.Seconds = since(t0)
	return res, nil
}

func runImpute(o ImputeOptions) (*ImputeResult, error) {
	t0 := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	run, err := o.openCSV(o.Path, o.CSV, o.Train, o.Val, o.Test, o.Length)
	if err != nil {
		return nil, err
	}
	fr, sp, end, ssl, maxSeries := run.fr, run.sp, run.end, run.ssl, run.maxSeries
	if sp.Test < o.Length {
		return nil, fmt.Errorf("the test split (%d rows) is shorter than a window (%d)", sp.Test, o.Length)
	}
	C := len(fr.Cols)
	step := func(b *models.Batch, rec arrow.RecordBatch) error {
		_, err := ssl.Step(rec)
		return err
	}
	if err := o.warmUp("impute", run); err != nil {
		return nil, err
	}
	k := keys(fr.Names, "main")
	col := map[string]int{}
	for c, key := range k {
		col[string(key)] = c
	}
	s := newRowStream(o.Model.Multichannel, o.Length, 1, o.BatchSize, maxSeries, step)
	if err := s.rows(fr, k, 0, sp.Train+sp.Val, nil); err != nil {
		s.close()
		return nil, err
	}
	if err := s.flush(); err != nil {
		s.close()
		return nil, err
	}
	var lw, ww binenc.Writer
	ssl.AppendState(&lw)
	s.w.AppendState(&ww)
	s.close()
	steps := ssl.Steps()
	o.logf("impute: trained, %d steps, %.0fs", steps, time.Since(t0).Seconds())

	testFrom := sp.Train + sp.Val
	row := make(map[int64]int, sp.Test)
	for i := testFrom; i < end; i++ {
		row[fr.Time[i]] = i
	}
	res := &ImputeResult{
		Data: o.Path, Columns: fr.Names, Split: sp, Length: o.Length, Epochs: o.Epochs, Steps: steps,
		Protocol: "TimesNet imputation: z-score on train rows; learn on train (and val); per ratio, hide test " +
			"points i.i.d., impute every window inside the test rows; MSE/MAE in z units on hidden points",
	}
	for ri, ratio := range o.Ratios {
		if !(ratio > 0 && ratio < 1) {
			return nil, fmt.Errorf("masking ratio %v must be in (0, 1)", ratio)
		}
		if err := ssl.LoadState(binenc.NewReader(lw.B)); err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(o.MaskSeed, uint64(ri)))
		hidden := make([]bool, sp.Test*C)
		nh := 0
		for i := range hidden {
			if rng.Float64() < ratio && !math.IsNaN(fr.Cols[i%C][testFrom+i/C]) {
				hidden[i] = true
				nh++
			}
		}
		var learner, linear, locf acc
		vals := make([]float64, o.Length)
		obs := make([]bool, o.Length)
		lin := make([]float64, o.Length)
		carry := make([]float64, o.Length)
		s := newRowStream(o.Model.Multichannel, o.Length, 1, o.BatchSize, maxSeries, func(b *models.Batch, rec arrow.RecordBatch) error {
			out, err := ssl.Step(rec)
			if err != nil {
				return err
			}
			for i := 0; i < b.Rows; i++ {
				r0, ok0 := row[b.SlotTime(i, 0)]
				_, ok1 := row[int64(b.End[i])]
				c, okc := col[b.Key(i)]
				if !ok0 || !ok1 || !okc {
					continue // not wholly inside the test rows
				}
				imp := out.Imputed[i*o.Length : (i+1)*o.Length]
				copy(vals, b.Row(i))
				for j := range obs {
					obs[j] = b.Observed(i, j)
				}
				interpolated := false
				for j, v := range imp {
					if math.IsNaN(v) {
						continue
					}
					truth := fr.Cols[c][r0+j]
					if math.IsNaN(truth) {
						continue
					}
					if !interpolated {
						linInterp(vals, obs, lin)
						carryForward(vals, obs, carry)
						interpolated = true
					}
					learner.add(v, truth)
					linear.add(lin[j], truth)
					locf.add(carry[j], truth)
				}
			}
			return nil
		})
		if err := s.w.LoadState(binenc.NewReader(ww.B)); err != nil {
			s.close()
			return nil, err
		}
		err := s.rows(fr, k, testFrom, end, func(r, c int) bool { return hidden[(r-testFrom)*C+c] })
		if err == nil {
			err = s.flush()
		}
		s.close()
		if err != nil {
			return nil, err
		}
		if learner.n == 0 {
			return nil, fmt.Errorf("ratio %v: no hidden point was imputed", ratio)
		}
		ir := ImputeRatio{Ratio: ratio, Hidden: nh, Scored: learner.n}
		ir.Figures = append(ir.Figures,
			fig(ssl.Name(), "learner", learner),
			fig("linear interpolation", "baseline", linear),
			fig("last observation carried forward", "baseline", locf))
		for name, tab := range publishedImpute {
			if p, ok := tab[ratio]; ok && dataIs(o.Path, name) {
				ir.Figures = append(ir.Figures, Figure{Method: "TimesNet", Kind: "published", MSE: p[0], MAE: p[1]})
			}
		}
		res.Ratios = append(res.Ratios, ir)
		o.logf("impute: seed %d: ratio %v done, %.0fs", o.Model.Seed, ratio, time.Since(t0).Seconds())
	}
	res.Seconds = since(t0)
	return res, nil
}

// linInterp fills out with vals at observed slots and, between them, the
// straight line joining the observed neighbours; before the first and after
// the last observed slot, the nearest observed value.
func linInterp(vals []float64, obs []bool, out []float64) {
	last := -1
	for j := range vals {
		if !obs[j] {
			continue
		}
		switch {
		case last < 0:
			for k := 0; k < j; k++ {
				out[k] = vals[j]
			}
		case j-last > 1:
			d := (vals[j] - vals[last]) / float64(j-last)
			for k := last + 1; k < j; k++ {
				out[k] = vals[last] + d*float64(k-last)
			}
		}
		out[j] = vals[j]
		last = j
	}
	if last < 0 {
		clear(out)
		return
	}
	for k := last + 1; k < len(vals); k++ {
		out[k] = vals[last]
	}
}

// carryForward fills each gap with the last observed value before it (the
// first observed value for leading gaps).
func carryForward(vals []float64, obs []bool, out []float64) {
	first := -1
	last := math.NaN()
	for j := range vals {
		if obs[j] {
			last = vals[j]
			if first < 0 {
				first = j
			}
		}
		out[j] = last
	}
	if first > 0 {
		for k := 0; k < first; k++ {
			out[k] = vals[first]
		}
	}
	if first < 0 {
		clear(out)
	}
}

// WriteTable prints the result as an aligned table.
func (r *ImputeResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "impute %s: %d channels, rows train %d / val %d / test %d, window %d, %d epoch(s), %d train steps, %.1fs\n",
		r.Data, len(r.Columns), r.Split.Train, r.Split.Val, r.Split.Test, r.Length, r.Epochs, r.Steps, r.Seconds)
	fmt.Fprintf(w, "protocol: %s\n\n", r.Protocol)
	t := table{head: []string{"ratio", "method", "kind", "MSE", "MAE", "points", "MSE over seeds"}}
	var learner, linear float64
	for _, ir := range r.Ratios {
		for _, f := range ir.Figures {
			t.add(fmt.Sprintf("%.1f%%", 100*ir.Ratio), f.Method, f.Kind, num(f.MSE), num(f.MAE), count(f.N), f.Seeds.String())
		}
		learner += ir.Figures[0].MSE / float64(len(r.Ratios))
		linear += ir.Figures[1].MSE / float64(len(r.Ratios))
	}
	t.add("mean", r.Ratios[0].Figures[0].Method, "learner", num(learner), "", "", "")
	t.add("mean", r.Ratios[0].Figures[1].Method, "baseline", num(linear), "", "", "")
	if err := t.write(w); err != nil {
		return err
	}
	for _, ir := range r.Ratios {
		fmt.Fprintf(w, "ratio %.1f%%: %d points hidden, %d scored (hidden points within half a window of the test edges have no window inside the test rows)\n",
			100*ir.Ratio, ir.Hidden, ir.Scored)
	}
	return nil
}
