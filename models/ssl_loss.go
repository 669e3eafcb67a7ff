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

// infoNCE holds the workspaces of the contrastive loss.
type infoNCE struct {
	u, s, ds, du, norm []float64
}

// loss is the NT-Xent contrastive loss (SimCLR) over 2n embeddings e
// (2n×dim): rows 0..n-1 are the first views of n windows, rows n..2n-1 the
// second views in the same order. Each row's positive is the other view of
// its window; the other 2n-2 rows are its negatives. Similarity is the
// cosine divided by the temperature tau. The loss is the mean over the 2n
// anchors of
//
//	-log exp(s(i,p(i))) / Σ_{k≠i} exp(s(i,k)).
//
// If grad is not nil, the gradient of weight·loss with respect to e is
// written into it.
func (c *infoNCE) loss(e []float64, n, dim int, tau, weight float64, grad []float64) float64 {
	m := 2 * n
	if n < 1 {
		return math.NaN()
	}
	c.u = grow(c.u, m*dim)
	c.norm = grow(c.norm, m)
	for i := 0; i < m; i++ {
		row := e[i*dim : (i+1)*dim]
		nr := math.Max(floats.Norm(row, 2), 1e-12)
		c.norm[i] = nr
		floats.ScaleTo(c.u[i*dim:(i+1)*dim], 1/nr, row)
	}
	// s = u·uᵀ/τ
	c.s = grow(c.s, m*m)
	gemm(false, true, m, m, dim, 1/tau, c.u, c.u, 0, c.s)
	c.ds = grow(c.ds, m*m)
	var total float64
	for i := 0; i < m; i++ {
		p := (i + n) % m
		row := c.s[i*m : (i+1)*m]
		mx := math.Inf(-1)
		for k, v := range row {
			if k != i && v > mx {
				mx = v
			}
		}
		var z float64
		for k, v := range row {
			if k != i {
				z += math.Exp(v - mx)
			}
		}
		lse := mx + math.Log(z)
		total += lse - row[p]
		d := c.ds[i*m : (i+1)*m]
		for k, v := range row {
			if k == i {
				d[k] = 0
				continue
			}
			d[k] = math.Exp(v-lse) / float64(m)
		}
		d[p] -= 1 / float64(m)
	}
	if grad != nil {
		// s(i,k) = u_i·u_k/τ, so dL/du = (ds + dsᵀ)·u/τ.
		c.du = grow(c.du, m*dim)
		gemm(false, false, m, dim, m, weight/tau, c.ds, c.u, 0, c.du)
		gemm(true, false, m, dim, m, weight/tau, c.ds, c.u, 1, c.du)
		// u = e/|e|: de = (du - (du·u)u)/|e|
		for i := 0; i < m; i++ {
			du := c.du[i*dim : (i+1)*dim]
			u := c.u[i*dim : (i+1)*dim]
			g := grad[i*dim : (i+1)*dim]
			floats.AddScaledTo(g, du, -floats.Dot(du, u), u)
			floats.Scale(1/c.norm[i], g)
		}
	}
	return total / float64(m)
}
