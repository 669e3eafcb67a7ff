package quality

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

// logregAccuracy fits a multinomial logistic regression with an L2 penalty
// on the train vectors (each scaled to unit length, then centred and scaled
// by one common factor fitted on the train set) and returns its test
// accuracy. The penalty is chosen among 9 values by 5-fold cross-validated
// accuracy on the train set (ties to the stronger penalty); folds are fixed
// by index, so the choice is deterministic.
func logregAccuracy(train [][]float64, trainLab []string, test [][]float64, testLab []string) float64 {
	train, test = unitRows(train), unitRows(test)
	n, d := len(train), len(train[0])
	classes, y := classIndex(trainLab)
	k := len(classes)
	mean := make([]float64, d)
	for _, x := range train {
		floats.AddScaled(mean, 1/float64(n), x)
	}
	var tot float64
	for _, x := range train {
		for j, v := range x {
			tot += (v - mean[j]) * (v - mean[j]) / float64(n*d)
		}
	}
	sc := math.Max(math.Sqrt(tot), 1e-12)
	prep := func(rows [][]float64) [][]float64 {
		out := make([][]float64, len(rows))
		for i, x := range rows {
			out[i] = make([]float64, d+1)
			for j, v := range x {
				out[i][j] = (v - mean[j]) / sc
			}
			out[i][d] = 1 // intercept, not penalised
		}
		return out
	}
	X, T := prep(train), prep(test)
	predict := func(w []float64, x []float64) int {
		best, bv := 0, math.Inf(-1)
		for c := 0; c < k; c++ {
			if v := floats.Dot(w[c*(d+1):(c+1)*(d+1)], x); v > bv {
				best, bv = c, v
			}
		}
		return best
	}
	// Nesterov's accelerated gradient with the step 1/L, L a bound on the
	// loss's curvature: the mean squared norm of the rows (softmax
	// cross-entropy's Hessian is at most that) plus lambda.
	var sq float64
	for _, x := range X {
		sq += floats.Dot(x, x) / float64(n)
	}
	fit := func(rows []int, lambda float64) []float64 {
		step := 1 / (sq + lambda)
		w := make([]float64, k*(d+1))
		prev := make([]float64, len(w))
		v := make([]float64, len(w))
		g := make([]float64, len(w))
		for it := 1; it <= 300; it++ {
			// v = w + (it-1)/(it+2)·(w - prev)
			mom := float64(it-1) / float64(it+2)
			for j := range v {
				v[j] = w[j] + mom*(w[j]-prev[j])
			}
			logregLoss(v, g, X, y, rows, k, d, lambda)
			copy(prev, w)
			floats.AddScaledTo(w, v, -step, g)
		}
		return w
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	bestLambda, bestAcc := 0.0, -1.0
	for e := 4; e >= -4; e-- { // strong to weak: ties keep the stronger
		lambda := math.Pow(10, float64(e)/2)
		right := 0
		for f := 0; f < 5; f++ {
			tr, va := fold(n, 5, f)
			w := fit(tr, lambda)
			for _, i := range va {
				if predict(w, X[i]) == y[i] {
					right++
				}
			}
		}
		if acc := float64(right) / float64(n); acc > bestAcc {
			bestLambda, bestAcc = lambda, acc
		}
	}
	w := fit(all, bestLambda)
	right := 0
	for i, x := range T {
		if classes[predict(w, x)] == testLab[i] {
			right++
		}
	}
	return float64(right) / float64(len(test))
}

// logregLoss is the mean cross-entropy over rows plus lambda/2·|W|² (the
// intercepts not penalised); with g it also writes the gradient.
func logregLoss(w, g []float64, X [][]float64, y []int, rows []int, k, d int, lambda float64) float64 {
	if g != nil {
		clear(g)
	}
	p := make([]float64, k)
	var loss float64
	for _, i := range rows {
		x := X[i]
		mx := math.Inf(-1)
		for c := 0; c < k; c++ {
			p[c] = floats.Dot(w[c*(d+1):(c+1)*(d+1)], x)
			mx = math.Max(mx, p[c])
		}
		var z float64
		for c := range p {
			p[c] = math.Exp(p[c] - mx)
			z += p[c]
		}
		loss -= math.Log(p[y[i]] / z)
		if g != nil {
			for c := 0; c < k; c++ {
				q := p[c] / z
				if c == y[i] {
					q--
				}
				floats.AddScaled(g[c*(d+1):(c+1)*(d+1)], q/float64(len(rows)), x)
			}
		}
	}
	loss /= float64(len(rows))
	for c := 0; c < k; c++ {
		wc := w[c*(d+1) : c*(d+1)+d]
		loss += lambda / 2 * floats.Dot(wc, wc)
		if g != nil {
			floats.AddScaled(g[c*(d+1):c*(d+1)+d], lambda, wc)
		}
	}
	return loss
}
