package quality

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSMOOptimality: the dual solution is feasible (0 ≤ α ≤ C, Σ y·α = 0)
// and meets the KKT conditions to the tolerance: y·f(x) ≥ 1 where α = 0,
// = 1 where 0 < α < C, ≤ 1 where α = C.
func TestSMOOptimality(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 80
	x := make([][]float64, n)
	y := make([]float64, n)
	for i := range x {
		y[i] = 1
		if i%2 == 1 {
			y[i] = -1
		}
		// overlapping blobs: some points on the wrong side
		x[i] = []float64{y[i]*0.7 + r.NormFloat64(), r.NormFloat64()}
	}
	K := func(i, j int) float64 {
		d0, d1 := x[i][0]-x[j][0], x[i][1]-x[j][1]
		return math.Exp(-0.5 * (d0*d0 + d1*d1))
	}
	for _, C := range []float64{0.1, 1, 100} {
		alpha, rho := smo(K, y, C)
		var sum float64
		free := 0
		for i, a := range alpha {
			if a < 0 || a > C {
				t.Fatalf("C %v: alpha %d = %v out of [0, C]", C, i, a)
			}
			sum += y[i] * a
			f := -rho
			for j, b := range alpha {
				f += b * y[j] * K(i, j)
			}
			const tol = 2e-3
			switch m := y[i] * f; {
			case a == 0 && m < 1-tol, a == C && m > 1+tol, a > 0 && a < C && math.Abs(m-1) > tol:
				t.Fatalf("C %v: point %d, alpha %v, margin %v: not optimal", C, i, a, m)
			}
			if a > 0 && a < C {
				free++
			}
		}
		if math.Abs(sum) > 1e-9 {
			t.Fatalf("C %v: sum y·alpha = %v", C, sum)
		}
		if free == 0 && C > 1 {
			t.Fatalf("C %v: no free support vector", C)
		}
	}
}

// TestSVMProbeNonlinear: three classes on rings around the origin, which
// no linear probe separates, are told apart by the RBF machine.
func TestSVMProbeNonlinear(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	gen := func(n int) ([][]float64, []string) {
		var x [][]float64
		var lab []string
		for i := 0; i < n; i++ {
			c := i % 3
			rad := 1 + float64(c) + 0.1*r.NormFloat64()
			th := 2 * math.Pi * r.Float64()
			// a constant third coordinate keeps rows apart after unit
			// scaling (which would map every ring onto one circle)
			x = append(x, []float64{rad * math.Cos(th), rad * math.Sin(th), 3})
			lab = append(lab, []string{"inner", "middle", "outer"}[c])
		}
		return x, lab
	}
	tr, trl := gen(150)
	te, tel := gen(150)
	if acc := svmAccuracy(tr, trl, te, tel); acc < 0.9 {
		t.Fatalf("rings: accuracy %.3f", acc)
	}
	if acc := ridgeAccuracy(tr, trl, te, tel); acc > 0.8 {
		t.Fatalf("rings: the linear probe reaches %.3f: the test does not need a kernel", acc)
	}
}
