package models

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tsrep/tsrep/dataset"
)

// TestImputerETTh1 fits the imputation model offline on ETTh1's training
// rows (windows of 96, i.i.d. masks at 10-50 %) and imputes the middle
// slot of test windows: with the other channels it must beat linear
// interpolation by far at every ratio (the quality bench measures the
// learner itself, online).
func TestImputerETTh1(t *testing.T) {
	fr, err := dataset.ReadCSV("../data/ETT/ETTh1.csv", dataset.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	C := len(fr.Cols)
	cols := make([][]float64, C)
	for c := range cols {
		x := fr.Cols[c][:14400]
		var m, s float64
		for _, v := range x[:8640] {
			m += v
		}
		m /= 8640
		for _, v := range x[:8640] {
			s += (v - m) * (v - m)
		}
		s = math.Sqrt(s / 8640)
		cols[c] = make([]float64, len(x))
		for i, v := range x {
			cols[c][i] = (v - m) / s
		}
	}
	const W, K = 96, 4
	rng := rand.New(rand.NewPCG(1, 2))
	models := make([]*RLS, C)
	for c := range models {
		models[c] = NewRLS(imputeDim(K, C-1), 1)
	}
	win := func(c, t0 int, hide []bool) []float64 {
		z := make([]float64, W)
		for j := range z {
			z[j] = cols[c][t0+j]
			if hide[c*W+j] {
				z[j] = math.NaN()
			}
		}
		return z
	}
	var feat []float64
	run := func(t0 int, hide []bool, learn bool, fn func(c, j int, pred, base, y float64)) {
		zs := make([][]float64, C)
		ips := make([][]float64, C)
		for c := range zs {
			zs[c] = win(c, t0, hide)
			ips[c] = make([]float64, W)
			interpolate(zs[c], ips[c])
		}
		j := W / 2
		for c := 0; c < C; c++ {
			if !hide[c*W+j] {
				continue
			}
			var oz, oi [][]float64
			for o := 0; o < C; o++ {
				if o != c {
					oz, oi = append(oz, zs[o]), append(oi, ips[o])
				}
			}
			ctx := imputeCtx{z: zs[c], ip: ips[c], others: oz, othersI: oi}
			feat = imputeFeatures(&ctx, j, K, feat)
			y := cols[c][t0+j]
			if learn {
				models[c].Update(feat, y-ips[c][j])
			} else {
				fn(c, j, ips[c][j]+models[c].Predict(feat), ips[c][j], y)
			}
		}
	}
	hide := make([]bool, C*W)
	for pass := 0; pass < 4; pass++ {
		ratio := 0.1 + 0.4*float64(pass)/3
		for t0 := 0; t0+W < 11424; t0++ {
			for i := range hide {
				hide[i] = rng.Float64() < ratio
			}
			run(t0, hide, true, nil)
		}
	}
	for _, ratio := range []float64{0.125, 0.5} {
		var se, si float64
		n := 0
		for t0 := 11424; t0+W < 14400; t0++ {
			for i := range hide {
				hide[i] = rng.Float64() < ratio
			}
			run(t0, hide, false, func(c, j int, p, b, y float64) {
				se += (p - y) * (p - y)
				si += (b - y) * (b - y)
				n++
			})
		}
		t.Logf("ratio %v: model %.4f interp %.4f ratio %.3f (%d)", ratio, se/float64(n), si/float64(n), se/si, n)
		if se/si > 0.7 {
			t.Errorf("ratio %v: model MSE %.4f is %.2f of interpolation's, want at most 0.7", ratio, se/float64(n), se/si)
		}
	}
}
