package models

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/floats"

	"github.com/tsrep/tsrep/internal/binenc"
)

// encoderIn is the number of input channels of the ssl learner's encoder
// per timestep: the series' normalised value (gaps linearly interpolated),
// whether it was observed, and its group's context (multichannel mode: the
// mean of the other channels' normalised values at that step, and the
// share of them observed; zero for a series on its own).
const encoderIn = 4

// sslEncoder is the shared part of the ssl learner: the dilated causal
// convolution encoder (convEncoder), its optimiser, and the bookkeeping
// that lets a consumer group share it. Its weights are the group's encoder
// version the partition adopted at the start of its epoch (base), plus
// what this partition learnt since; delta is that difference, the
// partition's contribution to the next version.
type sslEncoder struct {
	net *convEncoder
	// version is the same network bound to base: a shared encoder embeds
	// with the group's version, never with what this partition learnt
	// since (which only the next version will hold, merged).
	version      *convEncoder
	params, grad []float64
	base         []float64 // the adopted version's weights
	adamM, adamV []float64
	adamT        uint64

	lr, clip  float64
	tau       float64 // instance InfoNCE temperature
	wHier     float64
	wInstance float64
	maskP     float64 // share of timesteps kept in a view (TS2Vec: 0.5)

	hier *hierLoss
	nce  pooledNCE

	// workspaces
	work           convEncWork
	crop           cropPair
	v1, v2         []float64
	k1, k2         []bool
	a1, a2         convEncAct
	g1, g2         []float64
	embX, embOut   []float64
	same           []pair // the step's same-series anchor pairs
	trainedWindows int    // windows learnt from since the base was adopted
}

func newSSLEncoder(c *SSLConfig) (*sslEncoder, error) {
	net, err := newConvEncoder(convEncoderConfig{
		In: encoderIn, Hidden: c.Hidden, Out: c.Dim, Blocks: c.Blocks, Kernel: 3, ProjectLast: true,
	})
	if err != nil {
		return nil, err
	}
	h, err := newHierLoss(hierLossConfig{Alpha: 0.5})
	if err != nil {
		return nil, err
	}
	n := net.numParams()
	e := &sslEncoder{
		net: net, params: make([]float64, n), grad: make([]float64, n), base: make([]float64, n),
		adamM: make([]float64, n), adamV: make([]float64, n),
		lr: c.LearningRate, clip: c.ClipNorm, tau: c.Temperature,
		wHier: c.WeightHier, wInstance: c.WeightInstance, maskP: c.KeepShare, hier: h,
	}
	net.bind(e.params, e.grad, 0)
	net.init(rand.New(rand.NewPCG(c.Seed, 0x656e636f646572))) // "encoder"
	copy(e.base, e.params)
	if e.version, err = newConvEncoder(net.cfg); err != nil {
		return nil, err
	}
	e.version.bind(e.base, make([]float64, n), 0)
	return e, nil
}

// embed writes the window embeddings (D×n) of the n windows in x
// (encoderIn×n·T): with the adopted version's weights if shared, else with
// the current ones.
func (e *sslEncoder) embed(x matrix, T int, emb matrix, shared bool) {
	if shared {
		e.version.embed(x, T, nil, emb, &e.work)
		return
	}
	e.net.embed(x, T, nil, emb, &e.work)
}

// trainLosses are one step's losses (before the update).
type trainLosses struct{ hier, instance float64 }

// train runs one optimiser step on the n windows in x (encoderIn×n·T):
// two overlapping random crops of each window, each with a random share
// of its timesteps masked (TS2Vec's contextual consistency), TS2Vec's
// hierarchical contrastive loss on the shared timesteps, and the seed's
// instance-level InfoNCE (cosine, temperature) on the views' max-pooled
// embeddings; then Adam with global gradient-norm clipping.
//
// series[i] identifies window i's series (0: not known): two windows of
// one series are not each other's negatives in the instance losses. They
// overlap, or share the series' level and shape, so pushing them apart
// would teach the encoder to tell a series from itself; a partition with
// few series fills a batch with several windows of each.
func (e *sslEncoder) train(x matrix, T, n int, series []uint64, rng *rand.Rand) trainLosses {
	e.same = sameSeriesPairs(series[:n], e.same[:0])
	e.hier.same, e.nce.nce.same = e.same, e.same
	c := &e.crop
	c.sample(rng, T, n, min(T, 2))
	C, D := encoderIn, e.net.cfg.Out
	e.v1 = grow(e.v1, C*n*c.Len1)
	e.v2 = grow(e.v2, C*n*c.Len2)
	X1, X2 := newMat(C, n*c.Len1, e.v1), newMat(C, n*c.Len2, e.v2)
	cropCols(x, T, c.Start1, c.Len1, X1)
	cropCols(x, T, c.Start2, c.Len2, X2)
	e.k1 = growBool(e.k1, n*c.Len1)
	e.k2 = growBool(e.k2, n*c.Len2)
	drawKeep(rng, e.k1, e.maskP)
	drawKeep(rng, e.k2, e.maskP)
	R1 := e.net.forward(X1, c.Len1, e.k1, &e.a1)
	R2 := e.net.forward(X2, c.Len2, e.k2, &e.a2)
	e.g1 = grow(e.g1, D*n*c.Len1)
	e.g2 = grow(e.g2, D*n*c.Len2)
	clear(e.g1)
	clear(e.g2)
	G1, G2 := newMat(D, n*c.Len1, e.g1), newMat(D, n*c.Len2, e.g2)
	clear(e.grad)
	var ls trainLosses
	if e.wHier > 0 {
		ls.hier = e.hier.loss(R1, c.span1(), R2, c.span2(), e.wHier, G1, G2)
	}
	if e.wInstance > 0 {
		ls.instance = e.nce.loss(R1, c.span1(), R2, c.span2(), e.tau, e.wInstance, G1, G2)
	}
	e.net.backward(&e.a1, G1)
	e.net.backward(&e.a2, G2)
	if total := e.wHier*ls.hier + e.wInstance*ls.instance; !math.IsNaN(total) && !math.IsInf(total, 0) {
		if gn := floats.Norm(e.grad, 2); gn > e.clip {
			floats.Scale(e.clip/gn, e.grad)
		}
		e.adamT++
		adamStep(e.params, e.grad, e.adamM, e.adamV, e.adamT, e.lr)
	}
	e.trainedWindows += n
	return ls
}

// adamStep applies one bias-corrected Adam update of p with gradient g.
func adamStep(p, g, m, v []float64, t uint64, lr float64) {
	tt := float64(t)
	a := lr * math.Sqrt(1-math.Pow(adamBeta2, tt)) / (1 - math.Pow(adamBeta1, tt))
	for i, gi := range g {
		m[i] = adamBeta1*m[i] + (1-adamBeta1)*gi
		v[i] = adamBeta2*v[i] + (1-adamBeta2)*gi*gi
		p[i] -= a * m[i] / (math.Sqrt(v[i]) + adamEps)
	}
}

// delta writes what this partition learnt since it adopted its base into
// dst (params − base) and returns it.
func (e *sslEncoder) delta(dst []float64) []float64 {
	dst = append(dst[:0], e.params...)
	floats.Sub(dst, e.base)
	return dst
}

// adopt makes v the weights and the base (a new encoder version).
func (e *sslEncoder) adopt(v []float64) {
	copy(e.params, v)
	copy(e.base, v)
	e.trainedWindows = 0
}

func (e *sslEncoder) appendState(w *binenc.Writer) {
	w.F64s(e.params)
	w.F64s(e.base)
	w.F64s(e.adamM)
	w.F64s(e.adamV)
	w.U64(e.adamT)
	w.Len(e.trainedWindows)
}

func (e *sslEncoder) loadState(r *binenc.Reader) {
	n := len(e.params)
	for _, s := range [][]float64{e.params, e.base, e.adamM, e.adamV} {
		got := r.F64s(s[:0], n)
		if r.Err() == nil && len(got) != n {
			r.Fail("encoder state of %d weights, want %d (model.dim, hidden or blocks changed?)", len(got), n)
		}
	}
	e.adamT = r.U64()
	e.trainedWindows = r.Len(math.MaxInt32, 0)
}

func growBool(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	return s[:n]
}
