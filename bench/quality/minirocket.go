package quality

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// MiniRocket (Dempster, Schmidt & Webb, "MINIROCKET: A Very Fast (Almost)
// Deterministic Transform for Time Series Classification", KDD 2021) is the
// repr benchmark's learning-free baseline: 84 fixed kernels of length 9
// (weights -1, with 2 at three of the nine positions), each at a set of
// dilations spread exponentially up to (length-1)/8, biases drawn from
// quantiles of the kernel's output on random training series, and as
// features the proportion of positive values (PPV) of the output minus each
// bias. Half the kernel/dilation pairs see the zero-padded output, the other
// half only the positions where the kernel lies inside the series,
// alternating as in the paper. A ridge classifier on the normalised
// features, its penalty chosen by leave-one-out error, does the rest.

const (
	mrKernelLen = 9
	// mrKernels is the number of kernels: the ways to place three 2s
	// among nine weights.
	mrKernels = 84
	// mrMaxDilations caps the dilations per kernel.
	mrMaxDilations = 32
	// mrFeatures is the paper's feature count (rounded down to a multiple
	// of 84: 9,996).
	mrFeatures = 10_000
)

// mrTwos holds, for each kernel, the positions of its three weights 2, in
// lexicographic order of the combinations.
var mrTwos = func() [mrKernels][3]int {
	var t [mrKernels][3]int
	k := 0
	for a := 0; a < mrKernelLen; a++ {
		for b := a + 1; b < mrKernelLen; b++ {
			for c := b + 1; c < mrKernelLen; c++ {
				t[k] = [3]int{a, b, c}
				k++
			}
		}
	}
	return t
}()

// miniRocket is a fitted MiniRocket transform.
type miniRocket struct {
	length int
	// dilations are the distinct dilations, ascending; perDilation[i] is
	// the number of biases (features) each kernel has at dilations[i].
	dilations, perDilation []int
	// biases in feature order: dilation, then kernel, then quantile.
	biases []float64
}

// mrDilations spreads featuresPerKernel features over at most
// mrMaxDilations dilations 2^(i·e/(m-1)), i < m, truncated to integers,
// with 2^e = (length-1)/8 the largest dilation at which the kernel still
// fits the series; a dilation that truncation repeats gets the features of
// each repeat, and what rounding leaves goes round-robin from the smallest.
func mrDilations(length, featuresPerKernel int) (dilations, perDilation []int) {
	m := min(featuresPerKernel, mrMaxDilations)
	multiplier := float64(featuresPerKernel) / float64(m)
	maxExp := math.Log2(float64(length-1) / (mrKernelLen - 1))
	step := maxExp / float64(max(m-1, 1))
	for i := 0; i < m; i++ {
		e := maxExp
		if i < m-1 {
			e = float64(i) * step
		}
		d := int(math.Pow(2, e))
		if n := len(dilations); n > 0 && dilations[n-1] == d {
			perDilation[n-1]++
			continue
		}
		dilations = append(dilations, d)
		perDilation = append(perDilation, 1)
	}
	left := featuresPerKernel
	for i, c := range perDilation {
		perDilation[i] = int(float64(c) * multiplier)
		left -= perDilation[i]
	}
	for i := 0; left > 0; i = (i + 1) % len(perDilation) {
		perDilation[i]++
		left--
	}
	return dilations, perDilation
}

// mrQuantiles returns n quantile levels from the low-discrepancy sequence
// frac(i·φ), i = 1..n, φ the golden ratio.
func mrQuantiles(n int) []float64 {
	phi := (1 + math.Sqrt(5)) / 2
	q := make([]float64, n)
	for i := range q {
		_, q[i] = math.Modf(float64(i+1) * phi)
	}
	return q
}

// fitMiniRocket fits the transform to the train series (all of one length,
// at least 9 points, no NaN): about features features (rounded down to a
// multiple of 84), biases drawn with a generator seeded by seed.
func fitMiniRocket(train [][]float64, features int, seed uint64) (*miniRocket, error) {
	if len(train) == 0 {
		return nil, errors.New("minirocket: no train series")
	}
	L := len(train[0])
	if err := mrCheck(train, L); err != nil {
		return nil, err
	}
	perKernel := features / mrKernels
	if perKernel < 1 {
		return nil, fmt.Errorf("minirocket: %d features, want at least %d", features, mrKernels)
	}
	m := &miniRocket{length: L}
	m.dilations, m.perDilation = mrDilations(L, perKernel)
	quantiles := mrQuantiles(mrKernels * perKernel)
	m.biases = make([]float64, 0, len(quantiles))
	rng := rand.New(rand.NewPCG(seed, 0x6d696e69726f636b)) // "minirock"
	cv := newMRConv(L)
	sorted := make([]float64, L)
	for i, d := range m.dilations {
		for k := range mrKernels {
			cv.load(train[rng.IntN(len(train))], d)
			copy(sorted, cv.kernel(k))
			slices.Sort(sorted)
			for range m.perDilation[i] {
				m.biases = append(m.biases, quantile(sorted, quantiles[len(m.biases)]))
			}
		}
	}
	return m, nil
}

// mrCheck checks that every series has L points, at least 9, and no NaN.
func mrCheck(series [][]float64, L int) error {
	if L < mrKernelLen {
		return fmt.Errorf("minirocket: series of %d points, want at least %d", L, mrKernelLen)
	}
	for i, x := range series {
		if len(x) != L {
			return fmt.Errorf("minirocket: series %d has %d points, the first %d: series of unequal length are not supported", i, len(x), L)
		}
		if floats.HasNaN(x) {
			return fmt.Errorf("minirocket: series %d has missing values, not supported", i)
		}
	}
	return nil
}

// quantile returns the q-quantile of the ascending values, interpolated
// linearly between the two nearest ranks (numpy's default).
func quantile(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	lo := int(h)
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// numFeatures is the length of a transformed series.
func (m *miniRocket) numFeatures() int { return len(m.biases) }

// transform writes the features of each series into the rows of a new
// len(series) × numFeatures matrix.
func (m *miniRocket) transform(series [][]float64) (*mat.Dense, error) {
	if err := mrCheck(series, m.length); err != nil {
		return nil, err
	}
	out := mat.NewDense(len(series), m.numFeatures(), nil)
	cv := newMRConv(m.length)
	for i, x := range series {
		m.transformOne(cv, x, out.RawRowView(i))
	}
	return out, nil
}

// transformOne writes the features of x (m.length points) into out.
func (m *miniRocket) transformOne(cv *mrConv, x, out []float64) {
	f := 0
	for i, d := range m.dilations {
		cv.load(x, d)
		pad := (mrKernelLen - 1) / 2 * d
		for k := range mrKernels {
			c := cv.kernel(k)
			if (i+k)%2 == 1 { // the positions where the kernel lies inside
				c = c[pad : len(c)-pad]
			}
			for _, b := range m.biases[f : f+m.perDilation[i]] {
				out[f] = ppv(c, b)
				f++
			}
		}
	}
}

// ppv is the share of c above b. The reference loop
//
//	for _, v := range c { if v > b { n++ } }
//
// mispredicts about half its branches on a kernel's output; b-v is
// negative, its sign bit set, exactly when v > b (b-v is +0 when they are
// equal), so the count is the sum of the sign bits.
func ppv(c []float64, b float64) float64 {
	var n uint64
	for _, v := range c {
		n += math.Float64bits(b-v) >> 63
	}
	return float64(n) / float64(len(c))
}

// mrConv computes the 84 kernels' outputs on one series at one dilation
// from shared parts: every kernel is -1 at all nine taps plus 3 at three
// of them, so its output is the sum of the series' nine shifted copies
// times -1 plus three of those copies times 3. The series is zero-padded
// so that each output lines up with the kernel's centre.
type mrConv struct {
	minus []float64              // -Σ of the nine shifted copies
	three [mrKernelLen][]float64 // 3 × each shifted copy
	out   []float64              // the last kernel's output
	buf   []float64              // backing store of three
}

func newMRConv(L int) *mrConv {
	cv := &mrConv{minus: make([]float64, L), out: make([]float64, L), buf: make([]float64, mrKernelLen*L)}
	for j := range cv.three {
		cv.three[j] = cv.buf[j*L : (j+1)*L]
	}
	return cv
}

// load prepares the shifted copies of x at dilation d.
func (cv *mrConv) load(x []float64, d int) {
	L := len(x)
	clear(cv.minus)
	for j := range mrKernelLen {
		s := (j - mrKernelLen/2) * d // tap j reads x[t+s]
		lo, hi := max(0, -s), min(L, L-s)
		row := cv.three[j]
		clear(row)
		if lo >= hi {
			continue
		}
		floats.ScaleTo(row[lo:hi], 3, x[lo+s:hi+s])
		floats.Sub(cv.minus[lo:hi], x[lo+s:hi+s])
	}
}

// kernel returns kernel k's output on the loaded series, valid until the
// next call.
func (cv *mrConv) kernel(k int) []float64 {
	t := mrTwos[k]
	floats.AddTo(cv.out, cv.minus, cv.three[t[0]])
	floats.Add(cv.out, cv.three[t[1]])
	floats.Add(cv.out, cv.three[t[2]])
	return cv.out
}

// miniRocketAlphas is the paper's ridge penalty grid,
// numpy.logspace(-3, 3, 10).
func miniRocketAlphas() []float64 {
	a := make([]float64, 10)
	for i := range a {
		a[i] = math.Pow(10, -3+6*float64(i)/9)
	}
	return a
}

// miniRocketAccuracy fits MiniRocket (mrFeatures features, biases seeded
// by seed) and its ridge classifier on the train series and returns the
// accuracy on the test series. As in the paper, the series are not
// normalised; the features are centred and each scaled to unit norm over
// the train series (scikit-learn's normalize=True), and the penalty comes
// from miniRocketAlphas.
func miniRocketAccuracy(train [][]float64, trainLab []string, test [][]float64, testLab []string, seed uint64) (float64, error) {
	m, err := fitMiniRocket(train, mrFeatures, seed)
	if err != nil {
		return 0, err
	}
	X, err := m.transform(train)
	if err != nil {
		return 0, err
	}
	T, err := m.transform(test)
	if err != nil {
		return 0, fmt.Errorf("test series: %w", err)
	}
	scaleColumns(X, T)
	r, err := fitRidgeCV(X, trainLab, miniRocketAlphas())
	if err != nil {
		return 0, err
	}
	return r.accuracy(T, testLab), nil
}

// scaleColumns divides each column of X and T by the norm of X's column
// after centring (columns constant over X are left as they are).
func scaleColumns(X, T *mat.Dense) {
	n, p := X.Dims()
	mean := make([]float64, p)
	for i := range n {
		floats.Add(mean, X.RawRowView(i))
	}
	floats.Scale(1/float64(n), mean)
	norm := make([]float64, p)
	for i := range n {
		for j, v := range X.RawRowView(i) {
			norm[j] += (v - mean[j]) * (v - mean[j])
		}
	}
	for j, v := range norm {
		norm[j] = 1
		if v > 0 {
			norm[j] = 1 / math.Sqrt(v)
		}
	}
	for _, M := range []*mat.Dense{X, T} {
		r, _ := M.Dims()
		for i := range r {
			floats.Mul(M.RawRowView(i), norm)
		}
	}
}
