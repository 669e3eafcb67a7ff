package quality

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/tsrep/tsrep/dataset"
)

// TestMRDilations checks the dilations and features per dilation against
// those of the reference implementation (angus924/minirocket's
// _fit_dilations with 10,000 features and at most 32 dilations).
func TestMRDilations(t *testing.T) {
	for _, tc := range []struct {
		length   int
		dil, per []int
	}{
		{9, []int{1}, []int{119}},
		{24, []int{1, 2}, []int{79, 40}},
		{60, []int{1, 2, 3, 4, 5, 6, 7}, []int{41, 27, 15, 11, 11, 11, 3}},
		{96, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, []int{34, 19, 15, 12, 8, 8, 7, 3, 3, 7, 3}},
		{150, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 18}, []int{30, 15, 12, 12, 4, 8, 8, 4, 4, 4, 3, 3, 3, 3, 3, 3}},
		{577,
			[]int{1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 15, 18, 20, 23, 27, 31, 36, 41, 47, 54, 62, 71},
			[]int{23, 8, 12, 4, 4, 8, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3}},
		{2000,
			[]int{1, 2, 3, 4, 5, 7, 8, 10, 12, 14, 17, 20, 24, 29, 35, 42, 50, 60, 71, 85, 102, 122, 146, 174, 209, 249},
			[]int{15, 12, 4, 8, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3}},
	} {
		dil, per := mrDilations(tc.length, mrFeatures/mrKernels)
		if !slices.Equal(dil, tc.dil) || !slices.Equal(per, tc.per) {
			t.Errorf("length %d: dilations %v × %v, want %v × %v", tc.length, dil, per, tc.dil, tc.per)
		}
	}
}

// TestMRConv checks the kernels' outputs against the convolution written
// out: weights -1 with 2 at the kernel's three positions, the series
// zero-padded, output t centred on x[t].
func TestMRConv(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, L := range []int{9, 10, 37} {
		x := make([]float64, L)
		for i := range x {
			x[i] = r.NormFloat64()
		}
		cv := newMRConv(L)
		for d := 1; 8*d < L; d++ {
			cv.load(x, d)
			for k := range mrKernels {
				got := cv.kernel(k)
				for tt := range L {
					var want float64
					for j := range mrKernelLen {
						w := -1.0
						if slices.Contains(mrTwos[k][:], j) {
							w = 2
						}
						if i := tt + (j-4)*d; i >= 0 && i < L {
							want += w * x[i]
						}
					}
					if math.Abs(got[tt]-want) > 1e-12 {
						t.Fatalf("L %d, d %d, kernel %v, t %d: %g, want %g", L, d, mrTwos[k], tt, got[tt], want)
					}
				}
			}
		}
	}
	if mrTwos[0] != [3]int{0, 1, 2} || mrTwos[83] != [3]int{6, 7, 8} {
		t.Fatalf("kernels %v ... %v", mrTwos[0], mrTwos[83])
	}
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 4, 8}
	for q, want := range map[float64]float64{0: 1, 1: 8, 0.5: 3, 0.25: 1.75, 0.9: 6.8} {
		if got := quantile(s, q); math.Abs(got-want) > 1e-12 {
			t.Errorf("quantile %g = %g, want %g", q, got, want)
		}
	}
}

// TestMiniRocket checks that the transform is deterministic for a seed,
// has the paper's feature count, and that MiniRocket reaches its published
// accuracy (angus924/minirocket, original split) on three UCR sets.
func TestMiniRocket(t *testing.T) {
	read := func(name string) (*dataset.UCR, *dataset.UCR) {
		train, err := dataset.ReadUCR(ucr + name + "/" + name + "_TRAIN.tsv")
		if err != nil {
			t.Fatal(err)
		}
		test, err := dataset.ReadUCR(ucr + name + "/" + name + "_TEST.tsv")
		if err != nil {
			t.Fatal(err)
		}
		return train, test
	}
	train, _ := read("GunPoint")
	a, err := fitMiniRocket(train.Series, mrFeatures, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := fitMiniRocket(train.Series, mrFeatures, 1)
	if a.numFeatures() != 9996 || !slices.Equal(a.biases, b.biases) {
		t.Fatalf("%d features; same seed, same biases: %v", a.numFeatures(), slices.Equal(a.biases, b.biases))
	}
	Xa, _ := a.transform(train.Series[:5])
	Xb, _ := b.transform(train.Series[:5])
	if !mat.Equal(Xa, Xb) || mat.Max(Xa) > 1 || mat.Min(Xa) < 0 {
		t.Fatal("features differ for one seed, or are not proportions")
	}
	for name, published := range map[string]float64{"GunPoint": 0.993, "Coffee": 1, "ECG200": 0.91} {
		train, test := read(name)
		acc, err := miniRocketAccuracy(train.Series, train.Labels, test.Series, test.Labels, 1)
		if err != nil {
			t.Fatal(err)
		}
		if acc < published-0.03 {
			t.Errorf("%s: accuracy %.3f, published %.3f", name, acc, published)
		}
	}
	if _, err := fitMiniRocket([][]float64{make([]float64, 20), make([]float64, 19)}, mrFeatures, 1); err == nil {
		t.Fatal("series of unequal length accepted")
	}
}

// TestFitRidgeCV checks the closed-form leave-one-out choice of the
// penalty against refitting without each row, and the fit against the
// normal equations.
func TestFitRidgeCV(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	n, p := 24, 40
	X := mat.NewDense(n, p, nil)
	labels := make([]string, n)
	for i := range n {
		c := i % 3
		labels[i] = string(rune('a' + c))
		for j := range p {
			X.Set(i, j, r.NormFloat64()+float64(c*(j%3))*0.3)
		}
	}
	alphas := []float64{0.01, 0.3, 3, 30, 300}
	m, err := fitRidgeCV(X, labels, alphas)
	if err != nil {
		t.Fatal(err)
	}
	// fit solves min ‖Y - 1bᵀ - XW‖² + α‖W‖² through the normal equations
	// of the centred problem.
	fit := func(rows []int, alpha float64) (*mat.Dense, []float64) {
		sub := mat.NewDense(len(rows), p, nil)
		var lab []string
		for i, ri := range rows {
			sub.SetRow(i, X.RawRowView(ri))
			lab = append(lab, labels[ri])
		}
		classes, y := classIndex(lab)
		k := len(classes)
		xm := make([]float64, p)
		ym := make([]float64, k)
		for i := range rows {
			for j := range p {
				xm[j] += sub.At(i, j) / float64(len(rows))
			}
			for c := range k {
				v := -1.0
				if y[i] == c {
					v = 1
				}
				ym[c] += v / float64(len(rows))
			}
		}
		Xc := mat.NewDense(len(rows), p, nil)
		Yc := mat.NewDense(len(rows), k, nil)
		for i := range rows {
			for j := range p {
				Xc.Set(i, j, sub.At(i, j)-xm[j])
			}
			for c := range k {
				v := -1.0
				if y[i] == c {
					v = 1
				}
				Yc.Set(i, c, v-ym[c])
			}
		}
		var A, W mat.Dense
		A.Mul(Xc.T(), Xc)
		for j := range p {
			A.Set(j, j, A.At(j, j)+alpha)
		}
		var XtY mat.Dense
		XtY.Mul(Xc.T(), Yc)
		if err := W.Solve(&A, &XtY); err != nil {
			t.Fatal(err)
		}
		b := make([]float64, k)
		for c := range k {
			b[c] = ym[c]
			for j := range p {
				b[c] -= xm[j] * W.At(j, c)
			}
		}
		return &W, b
	}
	best, bestErr := 0.0, math.Inf(1)
	for _, alpha := range alphas {
		var loo float64
		for i := range n {
			var rows []int
			for j := range n {
				if j != i {
					rows = append(rows, j)
				}
			}
			W, b := fit(rows, alpha)
			for c := range 3 {
				var s float64
				for j := range p {
					s += X.At(i, j) * W.At(j, c)
				}
				want := -1.0
				if labels[i] == string(rune('a'+c)) {
					want = 1
				}
				loo += (want - s - b[c]) * (want - s - b[c])
			}
		}
		if loo < bestErr {
			best, bestErr = alpha, loo
		}
	}
	if m.alpha != best {
		t.Fatalf("penalty %g, refitting says %g", m.alpha, best)
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	W, b := fit(all, best)
	if !mat.EqualApprox(W, m.w, 1e-9) || math.Abs(b[0]-m.b[0]) > 1e-9 {
		t.Fatal("weights differ from the normal equations' solution")
	}
}

// BenchmarkMiniRocketTransform transforms one series of 150 points
// (GunPoint's length) into 9,996 features.
func BenchmarkMiniRocketTransform(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	train := make([][]float64, 20)
	for i := range train {
		train[i] = make([]float64, 150)
		for j := range train[i] {
			train[i][j] = r.NormFloat64()
		}
	}
	m, err := fitMiniRocket(train, mrFeatures, 1)
	if err != nil {
		b.Fatal(err)
	}
	cv := newMRConv(150)
	out := make([]float64, m.numFeatures())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.transformOne(cv, train[i%len(train)], out)
	}
}
