package models

import (
	"errors"
	"math"
	"math/bits"

	"gonum.org/v1/gonum/floats"
)

// hierLossConfig configures TS2Vec's hierarchical contrastive loss.
type hierLossConfig struct {
	// Alpha weighs the instance-wise loss, 1−Alpha the temporal loss
	// (TS2Vec: 0.5). A zero weight skips that loss's work.
	Alpha float64
	// TemporalUnit is the first scale at which the temporal loss counts
	// (TS2Vec: 0, every scale).
	TemporalUnit int
	// Cosine makes the similarity the cosine divided by Tau; otherwise it
	// is the raw dot product, as in TS2Vec.
	Cosine bool
	Tau    float64
}

// validate reports the first field out of range.
func (c hierLossConfig) validate() error {
	switch {
	case !(c.Alpha >= 0 && c.Alpha <= 1):
		return errors.New("hierarchical loss: alpha must be in [0, 1]")
	case c.TemporalUnit < 0:
		return errors.New("hierarchical loss: temporal unit must not be negative")
	case c.Cosine && !(c.Tau > 0):
		return errors.New("hierarchical loss: the cosine similarity needs a positive temperature")
	}
	return nil
}

// hierLoss computes TS2Vec's hierarchical contrastive loss between two
// views' per-timestep representations of the same N windows over their L
// shared timesteps (contextual consistency: a timestep's positive is the
// other view's representation of it). At each scale, with L steps:
//
//   - instance-wise: at each step t, the 2N representations of step t of
//     the N windows in both views; each one's positive is the other view
//     of its window, its negatives the other 2N−2;
//   - temporal (while L > 1, from scale TemporalUnit): in each window, the
//     2L representations of its steps in both views; each one's positive
//     is the other view at the same step, its negatives the other 2L−2;
//
// each the mean over its anchors of −log softmax of the positive's
// similarity among the anchor's candidates (every other representation
// of its group). The scale's loss is Alpha·instance + (1−Alpha)·temporal
// (instance only at the last scale, L = 1); then both views are
// max-pooled along time with kernel 2 and stride 2 (an odd last step is
// dropped, as torch's max_pool1d does) until one step is left. The loss is
// the mean over the 1+⌊log2 L⌋ scales.
//
// The similarity is the raw dot product (TS2Vec) or the cosine over a
// temperature (hierLossConfig.Cosine; each scale's pooled vectors are
// normalised). The softmaxes are shifted (see contrastRows), so large dot
// products cannot overflow. Each group's similarities are one product of
// its D×m vectors with themselves (the upper triangle only, with gonum),
// its gradient one more.
//
// Internally a scale's representations are held window-major, D×(N·2L),
// column n·2L + v·L + t for view v: a window's 2L vectors are adjacent
// for the temporal loss, and the instance loss gathers each step's 2N
// columns. The workspaces are kept across calls.
type hierLoss struct {
	cfg hierLossConfig
	sc  []hierScale
	// same lists anchor pairs that are not each other's negatives in the
	// instance loss (see sameSeriesPairs; set by the caller before loss).
	same   []pair
	tm, dt []float64 // the instance loss's time-major copies, D×(L·2N)
	s      []float64 // a similarity block, then its gradient
	z, mx  []float64 // contrastRows' scratch
}

// hierScale is one scale's state.
type hierScale struct {
	L         int
	z, u, du  []float64 // D×(N·2L): the representations, their normalised copies (cosine), the gradient
	norm, dot []float64 // cosine: the columns' norms, du·u
	arg       []int32   // D×(N·2L): the column of the previous scale each entry was pooled from
}

// newHierLoss returns the loss with the given configuration.
func newHierLoss(cfg hierLossConfig) (*hierLoss, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &hierLoss{cfg: cfg}, nil
}

// hierScales is the number of scales for L shared steps.
func hierScales(L int) int { return bits.Len(uint(L)) }

// loss returns the hierarchical loss between z1's steps s1 and z2's steps
// s2 (D×N·s.T each, the same N windows in the same order, s1.Len = s2.Len;
// a view's representations as convEncoder.forward returns them, the span
// picking the shared steps). If g1 has columns, weight times the loss's
// gradient is added into g1 and g2 (shaped as z1 and z2; columns outside
// the spans are left as they are).
func (h *hierLoss) loss(z1 matrix, s1 span, z2 matrix, s2 span, weight float64, g1, g2 matrix) float64 {
	N := s1.check(z1.c)
	if s2.check(z2.c) != N || s1.Len != s2.Len || z1.r != z2.r {
		panic("hierarchical loss: views mismatch")
	}
	grad := g1.c > 0
	if grad && (g1.r != z1.r || g1.c != z1.c || g2.r != z2.r || g2.c != z2.c) {
		panic("hierarchical loss: gradient shape mismatch")
	}
	D, L := z1.r, s1.Len
	d := hierScales(L)
	if cap(h.sc) < d {
		h.sc = append(h.sc[:cap(h.sc)], make([]hierScale, d-cap(h.sc))...)
	}
	h.sc = h.sc[:d]

	// Scale 0: gather the spans window-major.
	sc := &h.sc[0]
	sc.L = L
	sc.z = grow(sc.z, D*N*2*L)
	Z := newMat(D, N*2*L, sc.z)
	for r := 0; r < D; r++ {
		zr, a, b := Z.row(r), z1.row(r), z2.row(r)
		for n := 0; n < N; n++ {
			copy(zr[n*2*L:n*2*L+L], a[n*s1.T+s1.Off:])
			copy(zr[n*2*L+L:(n+1)*2*L], b[n*s2.T+s2.Off:])
		}
	}
	var total float64
	for k := 0; k < d; k++ {
		sc := &h.sc[k]
		if k > 0 {
			h.pool(&h.sc[k-1], sc, D, N)
		}
		total += h.scale(sc, k, D, N, weight/float64(d), grad)
	}
	if !grad {
		return total / float64(d)
	}
	// Back through the pooling, coarsest scale first: du now holds each
	// scale's gradient with respect to its z.
	for k := d - 1; k > 0; k-- {
		from, to := &h.sc[k], &h.sc[k-1]
		mf, mt := N*2*from.L, N*2*to.L
		for r := 0; r < D; r++ {
			dp, arg := to.du[r*mt:(r+1)*mt], from.arg[r*mf:(r+1)*mf]
			for i, v := range from.du[r*mf : (r+1)*mf] {
				dp[arg[i]] += v
			}
		}
	}
	dZ := newMat(D, N*2*L, h.sc[0].du)
	for r := 0; r < D; r++ {
		dr, a, b := dZ.row(r), g1.row(r), g2.row(r)
		for n := 0; n < N; n++ {
			floats.Add(a[n*s1.T+s1.Off:n*s1.T+s1.Off+L], dr[n*2*L:n*2*L+L])
			floats.Add(b[n*s2.T+s2.Off:n*s2.T+s2.Off+L], dr[n*2*L+L:(n+1)*2*L])
		}
	}
	return total / float64(d)
}

// pool max-pools scale from into to along time (kernel 2, stride 2),
// recording in to.arg the column (within its row) of each maximum.
func (h *hierLoss) pool(from, to *hierScale, D, N int) {
	Lf := from.L
	L := Lf / 2
	to.L = L
	to.z = grow(to.z, D*N*2*L)
	if cap(to.arg) < D*N*2*L {
		to.arg = make([]int32, D*N*2*L)
	}
	to.arg = to.arg[:D*N*2*L]
	for r := 0; r < D; r++ {
		src := from.z[r*N*2*Lf : (r+1)*N*2*Lf]
		dst, arg := to.z[r*N*2*L:(r+1)*N*2*L], to.arg[r*N*2*L:(r+1)*N*2*L]
		for g := 0; g < 2*N; g++ { // each window's view
			s, o := src[g*Lf:], g*L
			for t := 0; t < L; t++ {
				a, b := s[2*t], s[2*t+1]
				j := g*Lf + 2*t
				if b > a { // the first on ties, as torch
					a, j = b, j+1
				}
				dst[o+t], arg[o+t] = a, int32(j)
			}
		}
	}
}

// scale adds the scale's losses (with weight w, the caller's weight over
// the number of scales) and, with grad, leaves the gradient with respect to
// sc.z in sc.du.
func (h *hierLoss) scale(sc *hierScale, k, D, N int, w float64, grad bool) float64 {
	L, M := sc.L, N*2*sc.L
	Z := newMat(D, M, sc.z)
	U, scale := Z, 1.0
	if h.cfg.Cosine {
		scale = 1 / h.cfg.Tau
		sc.u = grow(sc.u, D*M)
		sc.norm = grow(sc.norm, M)
		U = newMat(D, M, sc.u)
		normCols(Z, U, sc.norm)
	}
	var dU matrix
	if grad {
		sc.du = grow(sc.du, D*M)
		clear(sc.du)
		dU = newMat(D, M, sc.du)
	}
	alpha := h.cfg.Alpha
	var total float64
	if alpha != 0 {
		total += alpha * h.instance(U, L, N, scale, alpha*w, dU)
	}
	if L > 1 && k >= h.cfg.TemporalUnit && alpha != 1 {
		total += (1 - alpha) * h.temporal(U, L, N, scale, (1-alpha)*w, dU)
	}
	if grad && h.cfg.Cosine {
		sc.dot = grow(sc.dot, M)
		normColsBackward(U, sc.norm, dU, sc.dot)
	}
	return total
}

// instance returns the instance-wise loss of a scale and, if dU has rows,
// adds w times its gradient into dU.
func (h *hierLoss) instance(U matrix, L, N int, scale, w float64, dU matrix) float64 {
	D, m := U.r, 2*N
	h.tm = grow(h.tm, D*L*m)
	h.s = grow(h.s, m*m)
	h.z = grow(h.z, m)
	h.mx = grow(h.mx, m)
	TM := newMat(D, L*m, h.tm)
	// TM column t·2N + v·N + n = U column n·2L + v·L + t.
	for r := 0; r < D; r++ {
		u, tr := U.row(r), TM.row(r)
		for g := 0; g < m; g++ { // g = n·2 + v in U, v·N + n in TM
			n, v := g/2, g%2
			src, o := u[n*2*L+v*L:n*2*L+v*L+L], v*N+n
			for t, x := range src {
				tr[t*m+o] = x
			}
		}
	}
	grad := dU.r > 0
	var DT matrix
	if grad {
		h.dt = grow(h.dt, D*L*m)
		DT = newMat(D, L*m, h.dt)
	}
	S := newMat(m, m, h.s)
	wa := w / float64(m*L) // the mean over the 2N·L anchors
	var total float64
	for t := 0; t < L; t++ {
		V := TM.cols(t*m, m)
		gram(V, scale, S)
		maskPairs(S, h.same, false)
		total += contrastRows(S, wa, grad, h.z[:m], h.mx[:m])
		if grad {
			gemm(false, false, scale, V, S, 0, DT.cols(t*m, m))
		}
	}
	if grad {
		for r := 0; r < D; r++ {
			du, dr := dU.row(r), DT.row(r)
			for g := 0; g < m; g++ {
				n, v := g/2, g%2
				dst, o := du[n*2*L+v*L:n*2*L+v*L+L], v*N+n
				for t := range dst {
					dst[t] += dr[t*m+o]
				}
			}
		}
	}
	return total / float64(m*L)
}

// temporal returns the temporal loss of a scale and, if dU has rows, adds
// w times its gradient into dU.
func (h *hierLoss) temporal(U matrix, L, N int, scale, w float64, dU matrix) float64 {
	m := 2 * L
	h.s = grow(h.s, m*m)
	h.z = grow(h.z, m)
	h.mx = grow(h.mx, m)
	S := newMat(m, m, h.s)
	grad := dU.r > 0
	wa := w / float64(N*m)
	var total float64
	for n := 0; n < N; n++ {
		V := U.cols(n*m, m)
		gram(V, scale, S)
		total += contrastRows(S, wa, grad, h.z[:m], h.mx[:m])
		if grad {
			gemm(false, false, scale, V, S, 1, dU.cols(n*m, m))
		}
	}
	return total / float64(N*m)
}

// contrastRows returns Σ_i −log softmax_{k≠i}(S_i)[p(i)] over the rows of
// the similarities S (m×m, m even, symmetric), where p(i) = (i+m/2) mod m
// is row i's positive and every other k ≠ i a negative. It reads only S's
// upper triangle (k > i). With grad it overwrites S with w·(G+Gᵀ),
// G_ik = softmax_ik − [k = p(i)] (G_ii = 0): the gradient of w·Σ with
// respect to the Gram matrix the similarities are taken from (up to their
// scale), symmetric as S is. z and mx are scratch of m entries.
//
// The softmaxes share one shift, the largest similarity M, when every
// row's largest candidate is within expSafe/2 of it: exp(S_ik − M) then
// serves rows i and k, half the exponentials, and no row's terms that
// matter can underflow. Otherwise (raw dot products far apart) each row
// gets its own shift.
func contrastRows(S matrix, w float64, grad bool, z, mx []float64) float64 {
	m := S.r
	h := m / 2
	for i := range mx {
		mx[i] = math.Inf(-1)
	}
	upper(m, func(i, k0, k1 int) {
		row := S.d[i*S.s:]
		mi := mx[i]
		for k := k0; k < k1; k++ { // (not math.Max: a call per entry)
			v := row[k]
			if v > mi {
				mi = v
			}
			if v > mx[k] {
				mx[k] = v
			}
		}
		mx[i] = mi
	})
	M := floats.Max(mx)
	if floats.Min(mx) < M-expSafe/2 || math.IsInf(M, 0) || math.IsNaN(M) {
		return contrastPerRow(S, w, grad, mx)
	}
	var total float64
	for i := 0; i < h; i++ { // S(i, i+h) is the positive of i and of i+h
		total += 2 * (M - S.d[i*S.s+i+h])
	}
	clear(z)
	upper(m, func(i, k0, k1 int) {
		row := S.d[i*S.s:]
		var zi float64
		for k := k0; k < k1; k++ {
			e := math.Exp(row[k] - M)
			if grad {
				row[k] = e
			}
			zi += e
			z[k] += e
		}
		z[i] += zi
	})
	for i := range z {
		total += math.Log(z[i])
	}
	if !grad {
		return total
	}
	for i := range z {
		z[i] = w / z[i]
	}
	// G(i,k) + G(k,i) = e(i,k)·(w/z_i + w/z_k) − 2w·[k = p(i)], p an
	// involution.
	upper(m, func(i, k0, k1 int) {
		zi := z[i]
		for k := k0; k < k1; k++ {
			g := S.d[i*S.s+k] * (zi + z[k])
			S.d[i*S.s+k], S.d[k*S.s+i] = g, g
		}
	})
	for i := 0; i < m; i++ {
		S.d[i*S.s+i] = 0
		S.d[i*S.s+(i+h)%m] -= 2 * w
	}
	return total
}

// contrastPerRow is contrastRows with a shift per row, its largest
// candidate (given in mx).
func contrastPerRow(S matrix, w float64, grad bool, mx []float64) float64 {
	m := S.r
	h := m / 2
	for i := 0; i < m; i++ { // mirror the upper triangle
		for k := 0; k < i; k++ {
			S.d[i*S.s+k] = S.d[k*S.s+i]
		}
	}
	var total float64
	for i := 0; i < m; i++ {
		row := S.row(i)
		p := (i + h) % m
		var z float64
		if !grad {
			for k, v := range row {
				if k != i {
					z += math.Exp(v - mx[i])
				}
			}
			total += mx[i] + math.Log(z) - row[p]
			continue
		}
		pos := row[p]
		row[i] = math.Inf(-1)
		for k, v := range row {
			e := math.Exp(v - mx[i])
			row[k] = e
			z += e
		}
		total += mx[i] + math.Log(z) - pos
		floats.Scale(w/z, row)
		row[p] -= w
	}
	if grad {
		for i := 0; i < m; i++ {
			for k := i + 1; k < m; k++ {
				v := S.d[i*S.s+k] + S.d[k*S.s+i]
				S.d[i*S.s+k], S.d[k*S.s+i] = v, v
			}
		}
	}
	return total
}

// gram writes scale·VᵀV into S, the upper triangle at least: with one
// Gemv per row (see gemm) only the entries right of the diagonal are
// computed, as contrastRows reads no others.
func gram(V matrix, scale float64, S matrix) {
	m := V.c
	if !perRowGemv {
		gemm(true, false, scale, V, V, 0, S)
		return
	}
	for i := 0; i < m-1; i++ {
		gemm(true, false, scale, V.cols(i, 1), V.cols(i+1, m-i-1), 0, S.rows(i, 1).cols(i+1, m-i-1))
	}
}

// normCols writes the columns of z divided by their norms into u and the
// norms (at least 1e-12) into norm.
func normCols(z, u matrix, norm []float64) {
	clear(norm)
	for r := 0; r < z.r; r++ {
		for j, v := range z.row(r) {
			norm[j] += v * v
		}
	}
	for j, v := range norm {
		norm[j] = math.Max(math.Sqrt(v), 1e-12)
	}
	for r := 0; r < z.r; r++ {
		floats.DivTo(u.row(r), z.row(r), norm)
	}
}

// normColsBackward turns du, the gradient with respect to u = z/|z|, into
// that with respect to z, in place: (du − (du·u)·u)/|z| column by column.
// dot is scratch of one entry per column.
func normColsBackward(u matrix, norm []float64, du matrix, dot []float64) {
	clear(dot)
	for r := 0; r < u.r; r++ {
		ur := u.row(r)
		for j, v := range du.row(r) {
			dot[j] += v * ur[j]
		}
	}
	for r := 0; r < u.r; r++ {
		ur, dr := u.row(r), du.row(r)
		for j, v := range dr {
			dr[j] = (v - dot[j]*ur[j]) / norm[j]
		}
	}
}

// hierFlops is the number of floating-point operations of the products of
// the loss and its gradient for N windows of L shared steps and D features
// (the similarities' upper triangle only where gram computes no more).
func hierFlops(N, L, D int, cfg hierLossConfig) float64 {
	group := func(m int) float64 { // one group of m vectors: similarities and their gradient
		sims := 2 * float64(m*m*D)
		if perRowGemv {
			sims = float64(m * (m - 1) * D)
		}
		return sims + 2*float64(m*m*D)
	}
	var f float64
	for k := 0; ; k++ {
		if cfg.Alpha != 0 {
			f += float64(L) * group(2*N)
		}
		if L > 1 && k >= cfg.TemporalUnit && cfg.Alpha != 1 {
			f += float64(N) * group(2*L)
		}
		if L <= 1 {
			return f
		}
		L /= 2
	}
}

// pooledNCE is the instance-level InfoNCE of the seed learner (infoNCE:
// cosine over a temperature, NT-Xent over 2N) on the two views' window
// embeddings, each view max-pooled over time.
type pooledNCE struct {
	nce        infoNCE
	e, g       []float64
	arg1, arg2 []int32
}

// loss max-pools z1 over s1 and z2 over s2 (D×N·s.T each, the same N
// windows in the same order; the spans may differ in length) and returns
// infoNCE's loss over the 2N embeddings; a window's positive is its other
// view. If g1 has columns, weight times the gradient is added into g1 and
// g2 (shaped as z1 and z2), at the steps the maxima came from.
func (p *pooledNCE) loss(z1 matrix, s1 span, z2 matrix, s2 span, tau, weight float64, g1, g2 matrix) float64 {
	N, D := s1.check(z1.c), z1.r
	if s2.check(z2.c) != N || z2.r != D {
		panic("pooled infonce: views mismatch")
	}
	p.e = grow(p.e, D*2*N)
	E := newMat(D, 2*N, p.e)
	p.arg1 = growInt32(p.arg1, D*N)
	p.arg2 = growInt32(p.arg2, D*N)
	maxPoolTime(z1, s1, E.cols(0, N), p.arg1)
	maxPoolTime(z2, s2, E.cols(N, N), p.arg2)
	if g1.c == 0 {
		return p.nce.loss(E, tau, weight, matrix{})
	}
	p.g = grow(p.g, D*2*N)
	G := newMat(D, 2*N, p.g)
	l := p.nce.loss(E, tau, weight, G)
	maxPoolTimeBackward(G.cols(0, N), p.arg1, g1)
	maxPoolTimeBackward(G.cols(N, N), p.arg2, g2)
	return l
}

// growInt32 returns s with length n, reusing its storage when it is big
// enough.
func growInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}
