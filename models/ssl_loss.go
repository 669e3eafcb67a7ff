package models

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

// huber is the Huber loss of error e with threshold d: quadratic within d,
// linear (L1 with slope d) beyond it.
func huber(e, d float64) float64 {
	if a := math.Abs(e); a > d {
		return d * (a - d/2)
	}
	return e * e / 2
}

// huberGrad is the derivative of huber with respect to e.
func huberGrad(e, d float64) float64 {
	switch {
	case e > d:
		return d
	case e < -d:
		return -d
	}
	return e
}

// pair is a pair (i, k), i < k, of the 2N anchors of a contrastive loss
// (column v·N + n: view v of window n).
type pair struct{ i, k int32 }

// sameSeriesPairs appends to dst the anchor pairs of distinct windows of
// one series (series[n] equal and not 0): every view of one against every
// view of the other. They are left out of each other's negatives.
func sameSeriesPairs(series []uint64, dst []pair) []pair {
	N := int32(len(series))
	for a := int32(0); a < N; a++ {
		if series[a] == 0 {
			continue
		}
		for b := a + 1; b < N; b++ {
			if series[b] == series[a] {
				dst = append(dst, pair{a, b}, pair{a, N + b}, pair{b, N + a}, pair{N + a, N + b})
			}
		}
	}
	return dst
}

// maskPairs sets the similarities of the given pairs to -Inf in S's upper
// triangle (and, with both, in its lower one): exp(-Inf) = 0 leaves them
// out of every softmax, and out of the gradient.
func maskPairs(S matrix, pairs []pair, both bool) {
	for _, p := range pairs {
		S.d[int(p.i)*S.s+int(p.k)] = math.Inf(-1)
		if both {
			S.d[int(p.k)*S.s+int(p.i)] = math.Inf(-1)
		}
	}
}

// infoNCE holds the workspaces of the contrastive loss.
type infoNCE struct {
	// same lists anchor pairs that are not each other's negatives (see
	// sameSeriesPairs; set by the caller before loss).
	same                       []pair
	u, s, ds, du, norm, dot, z []float64
}

// expSafe bounds the arguments -x of exp(x) that cannot underflow to zero
// or to a subnormal (exp(-708) is about the smallest normal float64).
const expSafe = 700

// tile is the side of the square tiles in which the softmax passes walk
// the upper triangle of an m×m matrix and mirror it into the lower: the
// transposed accesses then stay in cache.
const tile = 32

// upper calls f(i, k0, k1) for runs [k0, k1) of columns k > i that cover
// the upper triangle of an m×m matrix, tile by tile.
func upper(m int, f func(i, k0, k1 int)) {
	for i0 := 0; i0 < m; i0 += tile {
		for k0 := i0; k0 < m; k0 += tile {
			for i := i0; i < min(i0+tile, m); i++ {
				if lo, hi := max(k0, i+1), min(k0+tile, m); lo < hi {
					f(i, lo, hi)
				}
			}
		}
	}
}

// symmetric computes the loss from s (m×m, symmetric) with one shift for
// every row, 1/τ (no similarity exceeds it), so that exp(s(i,k) - 1/τ) is
// shared by rows i and k: half the exponentials of a shift per row. The
// caller makes sure they cannot underflow (2/τ ≤ expSafe). With grad it
// leaves the symmetric gradient g in c.ds.
func (c *infoNCE) symmetric(S matrix, n int, tau float64, grad bool) float64 {
	m := 2 * n
	shift := 1 / tau
	ds, z := c.ds, c.z
	clear(z)
	upper(m, func(i, k0, k1 int) {
		var zi float64
		for k := k0; k < k1; k++ {
			e := math.Exp(S.d[i*m+k] - shift)
			ds[i*m+k] = e
			zi += e
			z[k] += e
		}
		z[i] += zi
	})
	var total float64
	for i := 0; i < n; i++ { // s(i, i+n) is the positive of i and of i+n
		total += 2*(shift-S.d[i*m+i+n]) + math.Log(z[i]) + math.Log(z[i+n])
	}
	for i := range z {
		z[i] = 1 / (z[i] * float64(m)) // now the softmax's factor
	}
	if grad {
		// ds(i,k) = e(i,k)·z'(i) - [k = p(i)]/m; p is an involution, so
		// g(i,k) = e(i,k)·(z'(i) + z'(k)) - 2[k = p(i)]/m.
		upper(m, func(i, k0, k1 int) {
			zi := z[i]
			for k := k0; k < k1; k++ {
				g := ds[i*m+k] * (zi + z[k])
				ds[i*m+k], ds[k*m+i] = g, g
			}
		})
		for i := 0; i < m; i++ {
			ds[i*m+i] = 0
			p := (i + n) % m
			ds[i*m+p] -= 2 / float64(m)
		}
	}
	return total
}

// perRow computes the loss from s with a shift per row (its largest
// negative similarity), for temperatures too small for symmetric. With
// grad it leaves the symmetric gradient g in c.ds.
func (c *infoNCE) perRow(S matrix, n int, grad bool) float64 {
	m := 2 * n
	inv := 1 / float64(m)
	var total float64
	for i := 0; i < m; i++ {
		p := (i + n) % m
		row := S.row(i)
		mx := math.Inf(-1)
		for k, v := range row {
			if k != i && v > mx {
				mx = v
			}
		}
		// d = softmax over k ≠ i, from one exp per entry.
		d := c.ds[i*m : (i+1)*m]
		var z float64
		for k, v := range row {
			if k == i {
				d[k] = 0
				continue
			}
			d[k] = math.Exp(v - mx)
			z += d[k]
		}
		total += mx + math.Log(z) - row[p]
		floats.Scale(inv/z, d)
		d[p] -= inv
	}
	if grad {
		ds := c.ds
		upper(m, func(i, k0, k1 int) {
			for k := k0; k < k1; k++ {
				v := ds[i*m+k] + ds[k*m+i]
				ds[i*m+k], ds[k*m+i] = v, v
			}
		})
	}
	return total
}

// loss is the NT-Xent contrastive loss (SimCLR) over the 2n columns of e
// (dim×2n, feature-major): columns 0..n-1 are the first views of n
// windows, columns n..2n-1 the second views in the same order. Each
// column's positive is the other view of its window; the other 2n-2
// columns are its negatives. Similarity is the cosine divided by the
// temperature tau. The loss is the mean over the 2n anchors of
//
//	-log exp(s(i,p(i))) / Σ_{k≠i} exp(s(i,k)).
//
// If grad has columns, the gradient of weight·loss with respect to e is
// written into it (dim×2n).
func (c *infoNCE) loss(e matrix, tau, weight float64, grad matrix) float64 {
	m, dim := e.c, e.r
	n := m / 2
	if n < 1 || m != 2*n {
		return math.NaN()
	}
	// Column norms, and u = e/|e| (dim×m).
	c.norm = grow(c.norm, m)
	clear(c.norm)
	for r := 0; r < dim; r++ {
		for j, v := range e.row(r) {
			c.norm[j] += v * v
		}
	}
	for j, v := range c.norm {
		c.norm[j] = math.Max(math.Sqrt(v), 1e-12)
	}
	c.u = grow(c.u, dim*m)
	U := newMat(dim, m, c.u)
	for r := 0; r < dim; r++ {
		ur := U.row(r)
		for j, v := range e.row(r) {
			ur[j] = v / c.norm[j]
		}
	}
	// s = uᵀ·u/τ
	c.s = grow(c.s, m*m)
	S := newMat(m, m, c.s)
	// ds is the gradient of the mean loss with respect to s, made
	// symmetric: g(i,k) = ds(i,k) + ds(k,i), since s(i,k) = s(k,i).
	c.ds = grow(c.ds, m*m)
	c.z = grow(c.z, m)
	var total float64
	if 2/tau <= expSafe {
		// symmetric reads only the upper triangle; with one Gemv per row
		// (see gemm) each entry is computed as in the full product.
		if perRowGemv {
			for i := 0; i < m-1; i++ {
				gemm(true, false, 1/tau, U.cols(i, 1), U.cols(i+1, m-i-1), 0, S.rows(i, 1).cols(i+1, m-i-1))
			}
		} else {
			gemm(true, false, 1/tau, U, U, 0, S)
		}
		maskPairs(S, c.same, false)
		total = c.symmetric(S, n, tau, grad.c > 0)
	} else {
		gemm(true, false, 1/tau, U, U, 0, S)
		maskPairs(S, c.same, true)
		total = c.perRow(S, n, grad.c > 0)
	}
	if grad.c > 0 {
		// s(i,k) = u_i·u_k/τ, so dL/du = u·g/τ.
		ds := c.ds
		c.du = grow(c.du, dim*m)
		dU := newMat(dim, m, c.du)
		gemm(false, false, weight/tau, U, newMat(m, m, ds), 0, dU)
		// u = e/|e|: de = (du - (du·u)u)/|e|, column by column.
		c.dot = grow(c.dot, m)
		clear(c.dot)
		for r := 0; r < dim; r++ {
			ur := U.row(r)
			for j, v := range dU.row(r) {
				c.dot[j] += v * ur[j]
			}
		}
		for r := 0; r < dim; r++ {
			ur, gr := U.row(r), grad.row(r)
			for j, v := range dU.row(r) {
				gr[j] = (v - c.dot[j]*ur[j]) / c.norm[j]
			}
		}
	}
	return total / float64(m)
}
