package models

import (
	"fmt"
	"math"
	"strings"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/lru"
)

// AnomalyConfig configures the anomaly score (see Anomaly). Start from
// DefaultAnomalyConfig; every field is used as given. The defaults were
// chosen on the NAB corpus by the grid of `tsrep bench nab --grid`.
type AnomalyConfig struct {
	// MaxSeries caps the series whose state is held; past it the least
	// recently scored series is evicted (and starts over, warm-up
	// included, if it comes back). Default 100000 (window.max_series).
	MaxSeries int
	// Warmup is the number of scored points of a series that get score 0
	// while its statistics settle (they still learn from them).
	// Default 64.
	Warmup int
	// ErrorHorizon is the memory, in points, of the decayed mean and
	// standard deviation that standardise a series' forecast errors (and
	// its embeddings' novelty). Default 1000.
	ErrorHorizon int
	// Winsor caps a standardised error at this many standard deviations
	// when it updates those statistics, so that one anomaly does not mask
	// the next. Default 5.
	Winsor float64
	// TailHorizon is the memory, in points, of the decayed histogram of
	// standardised errors against which a new error's rarity is measured.
	// Default 4000.
	TailHorizon int
	// TailPower is the exponent of the power-law tail assumed beyond the
	// largest error of that histogram: an error k times the largest is
	// k^TailPower times rarer than it. Default 2.
	TailPower float64
	// RangeTolerance flags a value further outside the range of all the
	// series' values so far than this share of the range, with a surprise
	// that grows with the excess (Numenta's NAB detector's "spatial
	// anomaly", there with 0.05); 0 turns the range channel off.
	// Default 0.005.
	RangeTolerance float64
	// NoveltyK is the number of a series' past embeddings kept to measure
	// the novelty of its newest one; 0 turns the novelty channel off. It
	// costs NoveltyK·dim·8 bytes per series. Default 0: with the ssl
	// learner of 2026-12, it did not improve the NAB score (see the
	// README's NAB section).
	NoveltyK int
	// NoveltyEvery is how often, in scored points, an embedding joins the
	// kept ones. Default 64.
	NoveltyEvery int
	// HalfScore is the surprise (−log10 of the probability) that maps to
	// score 0.5: score = s/(s+HalfScore). Default 4 (a one-in-10,000
	// event scores 0.5).
	HalfScore float64
}

// DefaultAnomalyConfig returns the defaults.
func DefaultAnomalyConfig() AnomalyConfig {
	return AnomalyConfig{
		MaxSeries:      100000,
		Warmup:         64,
		ErrorHorizon:   1000,
		Winsor:         5,
		TailHorizon:    4000,
		TailPower:      2,
		RangeTolerance: 0.005,
		NoveltyEvery:   64,
		HalfScore:      4,
	}
}

// anomMaxNoveltyK bounds AnomalyConfig.NoveltyK.
const anomMaxNoveltyK = 1024

// Validate reports the first setting out of range.
func (c *AnomalyConfig) Validate() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("anomaly config: "+format, a...) }
	switch {
	case c.MaxSeries < 1:
		return bad("max series %d must be at least 1", c.MaxSeries)
	case c.Warmup < 0:
		return bad("warmup %d must be >= 0", c.Warmup)
	case c.ErrorHorizon < 2 || c.TailHorizon < 2:
		return bad("error horizon %d and tail horizon %d must be at least 2", c.ErrorHorizon, c.TailHorizon)
	case !(c.Winsor > 0) || !(c.TailPower > 0) || !(c.HalfScore > 0):
		return bad("winsor %v, tail power %v and half score %v must be > 0", c.Winsor, c.TailPower, c.HalfScore)
	case !(c.RangeTolerance >= 0):
		return bad("range tolerance %v must be >= 0", c.RangeTolerance)
	case c.NoveltyK < 0 || c.NoveltyK > anomMaxNoveltyK:
		return bad("novelty k %d must be in [0, %d]", c.NoveltyK, anomMaxNoveltyK)
	case c.NoveltyK > 0 && c.NoveltyEvery < 1:
		return bad("novelty every %d must be at least 1", c.NoveltyEvery)
	}
	return nil
}

// AnomalyScore is the score of one point.
type AnomalyScore struct {
	Row  int   // the batch row that brought the point
	Time int64 // the point's time (Unix ns)
	// Score is the anomaly score in [0, 1]: Surprise/(Surprise+HalfScore),
	// 0 during the series' warm-up.
	Score float64
	// Surprise is −log10 of the probability of what the point shows, the
	// largest of the channels'.
	Surprise float64
	// Z is the forecast error in standard deviations of the series'
	// recent errors (NaN when the point could not be scored).
	Z float64
	// Novelty is the cosine distance of the embedding to the nearest of
	// the series' kept ones (NaN when there is none).
	Novelty float64
}

// AnomalyPoint is what the score of one point is computed from.
type AnomalyPoint struct {
	Time      int64
	Actual    float64
	Predicted float64 // the learner's forecast of the point, made before it arrived
	Baseline  float64 // the last value observed then; used where Predicted is NaN
	// Embedding is the embedding of the window that brought the point
	// (nil: none). It is copied, not kept.
	Embedding []float64
}

// Anomaly scores each point from what a learner knew before it arrived:
// the error of the forecast made for it and, optionally, how new the
// embedding of the window that brought it is.
//
// Each channel measures a surprise, −log10 of the probability of what the
// point shows given the series' own history:
//
//   - forecast error. The error is standardised by the series' decayed
//     error mean and standard deviation (ErrorHorizon; updates winsorised
//     at Winsor), and its magnitude |z| is looked up in a decayed
//     histogram of the series' past |z| (TailHorizon): the surprise is
//     −log10 of the share of past points at least as extreme. An error
//     beyond every one in the histogram is rarer than 1/(n+1) by the
//     power law (|z|/largest)^TailPower. Forecast errors are heavy-tailed
//     and their tails differ by series, so a Gaussian tail would flood the
//     heavy-tailed series with alarms; the empirical tail makes scores
//     comparable across series, which a single alerting threshold needs.
//   - range (RangeTolerance > 0). A value outside the range of all the
//     series' values so far by more than RangeTolerance of the range
//     surprises by log10(n+1) + TailPower·log10(excess/tolerance).
//   - novelty (NoveltyK > 0). The cosine distance of the embedding to the
//     nearest of the series' last NoveltyK kept embeddings (one kept every
//     NoveltyEvery points), standardised and looked up in its own
//     histogram like the error.
//
// The score is the largest surprise s mapped to s/(s+HalfScore). Every
// statistic is updated after the point is scored (prequential), so the
// score is what the state before the point says of it. Scoring is
// deterministic, bounded (MaxSeries series of a few hundred bytes, plus
// the kept embeddings) and, once a series is known, allocation-free.
type Anomaly struct {
	cfg    AnomalyConfig
	series *lru.Map[*anomSeries]
	out    []AnomalyScore
}

// NewAnomaly returns a scorer.
func NewAnomaly(cfg AnomalyConfig) (*Anomaly, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Anomaly{cfg: cfg, series: lru.New[*anomSeries](cfg.MaxSeries)}, nil
}

// Config returns the configuration.
func (a *Anomaly) Config() AnomalyConfig { return a.cfg }

// Series is the number of series held.
func (a *Anomaly) Series() int { return a.series.Len() }

// Observe scores every point a batch resolved: b and out are the batch and
// the learner's Output for it, resolved what Prequential.Observe returned
// for them, as a partition runs them:
//
//	out, _ := learner.Step(rec)
//	b, _ := models.View(rec)
//	resolved := preq.Observe(&b, out)
//	scores := anomaly.Observe(&b, out, resolved)
//
// A point is scored when the forecast made for it is resolved, so with
// stride S one point per series every S (the one after each window's end)
// is scored, every point at stride 1. The scores are row-aligned with
// resolved (Row is the row that brought the point, Time its time) and
// valid until the next call.
func (a *Anomaly) Observe(b *Batch, out *Output, resolved []Resolved) []AnomalyScore {
	a.out = a.out[:0]
	for _, r := range resolved {
		p := AnomalyPoint{Time: r.Time, Actual: r.Actual, Predicted: r.Predicted, Baseline: r.Baseline}
		if out != nil && out.Dim > 0 && len(out.Embedding) >= (r.Row+1)*out.Dim {
			p.Embedding = out.Embedding[r.Row*out.Dim : (r.Row+1)*out.Dim]
		}
		sc := a.Point(b.Key(r.Row), &p)
		sc.Row = r.Row
		a.out = append(a.out, sc)
	}
	return a.out
}

// anomSeries is one series' state.
type anomSeries struct {
	n      int64    // points scored
	err    anomStat // forecast error
	val    anomStat // values (a floor for the error's scale)
	errH   anomHist
	lo, hi float64 // range of the values so far
	nov    *anomNovelty
}

// anomNovelty is a series' kept embeddings and the statistics of their
// distances.
type anomNovelty struct {
	dim, kept, next int
	emb             []float64 // NoveltyK × dim
	dist            anomStat
	h               anomHist
}

// anomStat is a decayed mean and variance: each new value weighs
// 1/min(n, horizon).
type anomStat struct{ mean, vr, n float64 }

func (s *anomStat) add(x, horizon float64) {
	s.n++
	k := math.Min(s.n, horizon)
	d := x - s.mean
	s.mean += d / k
	s.vr += (d*(x-s.mean) - s.vr) / k
}

func (s *anomStat) std() float64 { return math.Sqrt(math.Max(s.vr, 0)) }

// standardise is (x−mean)/sd against s, with sd floored; 0 until s has
// two values.
func (s *anomStat) standardise(x, floor float64) (z, sd float64) {
	sd = math.Max(s.std(), floor)
	if s.n < 2 {
		return 0, sd
	}
	return (x - s.mean) / sd, sd
}

// addWinsorised folds x in, clipped to mean ± w·sd.
func (s *anomStat) addWinsorised(x, z, sd, w, horizon float64) {
	if s.n >= 2 {
		x = s.mean + math.Max(-w, math.Min(w, z))*sd
	}
	s.add(x, horizon)
}

// anomBins is the number of bins of an anomHist: lower edges
// anomBase·2^(k/2), from 1/8 to about 2·10⁶.
const (
	anomBins = 48
	anomBase = 0.125
)

// anomEdges holds the lower edge of every bin and, last, the upper edge of
// the last but one (the last bin is open).
var anomEdges = func() (e [anomBins + 1]float64) {
	for k := range e {
		e[k] = anomBase * math.Exp2(float64(k)/2)
	}
	return e
}()

// anomBin is the bin of x ≥ 0: ⌊2·log2(x/anomBase)⌋, clamped.
func anomBin(x float64) int {
	if !(x >= anomBase*math.Sqrt2) {
		return 0
	}
	m, e := math.Frexp(x) // x = m·2^e, m in [0.5, 1)
	// 2·log2(x/anomBase) = 2e + 6 + 2·log2(m), and 2·log2(m) is in
	// [-1, 0) for m ≥ 1/√2, in [-2, -1) below.
	k := 2*e + 5
	if m < math.Sqrt2/2 {
		k--
	}
	return min(k, anomBins-1)
}

// anomHist is a decayed histogram of magnitudes on a geometric grid. The
// past decays by 1 − 1/horizon per point added; rather than scaling every
// bin down, a new point weighs unit, which grows by the inverse of the
// decay (the bins are rescaled when it gets large).
type anomHist struct {
	bins [anomBins]float64
	mass float64 // the bins' sum
	unit float64 // the weight of a point added now (0: none yet)
}

// add folds x in.
func (h *anomHist) add(x, horizon float64) {
	if h.unit == 0 {
		h.unit = 1
	} else {
		h.unit /= 1 - 1/horizon
	}
	if h.unit > 1e100 {
		for k := range h.bins {
			h.bins[k] /= h.unit
		}
		h.mass /= h.unit
		h.unit = 1
	}
	h.bins[anomBin(x)] += h.unit
	h.mass += h.unit
}

// surprise is −log10 of the probability of a magnitude at least x: the
// histogram's mass at least x (interpolated inside x's bin) over its mass
// plus one point. Where less than one point's mass is that large, it is
// that of one point, times the power law (x/top)^power beyond the top of
// the occupied bins.
func (h *anomHist) surprise(x, power float64) float64 {
	u := h.unit
	if u == 0 || h.mass < u {
		return 0
	}
	k := anomBin(x)
	var above float64
	for _, b := range h.bins[k+1:] {
		above += b
	}
	frac := 1.0
	if lo, hi := anomEdges[k], anomEdges[k+1]; k < anomBins-1 && x > lo {
		frac = (hi - x) / (hi - lo)
	}
	above += h.bins[k] * frac
	if above >= u {
		return math.Log10((h.mass + u) / above)
	}
	top := anomEdges[0]
	for j := anomBins - 1; j >= 0; j-- {
		if h.bins[j] >= 1e-3*u {
			top = anomEdges[j+1]
			break
		}
	}
	return math.Log10(h.mass/u+1) + power*math.Log10(math.Max(1, x/top))
}

// Point scores one point of the series key. The key may alias a batch; it
// is copied when the series is new.
func (a *Anomaly) Point(key string, p *AnomalyPoint) AnomalyScore {
	c := &a.cfg
	res := AnomalyScore{Time: p.Time, Z: math.NaN(), Novelty: math.NaN()}
	pred := p.Predicted
	if math.IsNaN(pred) {
		pred = p.Baseline
	}
	x := p.Actual
	if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(pred) || math.IsInf(pred, 0) {
		return res
	}
	s, ok := a.series.GetString(key)
	if !ok {
		s = &anomSeries{lo: math.Inf(1), hi: math.Inf(-1)}
		a.series.Put(strings.Clone(key), s)
	}
	eh, th := float64(c.ErrorHorizon), float64(c.TailHorizon)

	// Forecast error.
	e := x - pred
	z, sd := s.err.standardise(e, math.Max(1e-3*s.val.std(), 1e-9*(1+math.Abs(x))))
	az := math.Abs(z)
	res.Z = z
	surprise := s.errH.surprise(az, c.TailPower)

	// Range.
	if c.RangeTolerance > 0 && s.hi > s.lo {
		r := s.hi - s.lo
		if ex := math.Max(x-s.hi, s.lo-x) / r; ex > c.RangeTolerance {
			surprise = math.Max(surprise, math.Log10(float64(s.n)+1)+c.TailPower*math.Log10(ex/c.RangeTolerance))
		}
	}

	// Novelty.
	if c.NoveltyK > 0 && len(p.Embedding) > 0 {
		nv := s.nov
		if nv == nil || nv.dim != len(p.Embedding) {
			nv = &anomNovelty{dim: len(p.Embedding), emb: make([]float64, c.NoveltyK*len(p.Embedding))}
			s.nov = nv
		}
		if nv.kept > 0 {
			d := anomNearestCosine(p.Embedding, nv.emb[:nv.kept*nv.dim], nv.dim)
			res.Novelty = d
			zn, _ := nv.dist.standardise(d, 1e-9)
			zn = math.Max(zn, 0)
			surprise = math.Max(surprise, nv.h.surprise(zn, c.TailPower))
			nv.dist.add(d, eh)
			if nv.dist.n > 2 {
				nv.h.add(zn, th)
			}
		}
		if s.n%int64(c.NoveltyEvery) == 0 {
			copy(nv.emb[nv.next*nv.dim:(nv.next+1)*nv.dim], p.Embedding)
			nv.next = (nv.next + 1) % c.NoveltyK
			nv.kept = min(nv.kept+1, c.NoveltyK)
		}
	}

	// Learn from the point, after scoring it.
	s.err.addWinsorised(e, z, sd, c.Winsor, eh)
	if s.err.n > 2 {
		s.errH.add(az, th)
	}
	s.val.add(x, eh)
	s.lo, s.hi = math.Min(s.lo, x), math.Max(s.hi, x)
	s.n++
	res.Surprise = surprise
	if s.n > int64(c.Warmup) {
		res.Score = surprise / (surprise + c.HalfScore)
	}
	return res
}

// anomNearestCosine is the smallest cosine distance between v and the rows of
// m (each dim long); 1 against a zero vector.
func anomNearestCosine(v, m []float64, dim int) float64 {
	var vv float64
	for _, x := range v {
		vv += x * x
	}
	best := 2.0
	for off := 0; off+dim <= len(m); off += dim {
		row := m[off : off+dim]
		var dot, rr float64
		for j, x := range row {
			dot += x * v[j]
			rr += x * x
		}
		d := 1.0
		if vv > 0 && rr > 0 {
			d = 1 - dot/math.Sqrt(vv*rr)
		}
		best = math.Min(best, d)
	}
	return best
}

// anomalyStateVersion is the version of what AppendState writes.
const anomalyStateVersion = 1

// AppendState writes every series' state, least recently scored first,
// for a checkpoint.
func (a *Anomaly) AppendState(w *binenc.Writer) {
	w.U32(anomalyStateVersion)
	w.Len(a.series.Len())
	a.series.Range(func(k string, s *anomSeries) bool {
		w.String(k)
		w.I64(s.n)
		s.err.appendState(w)
		s.val.appendState(w)
		s.errH.appendState(w)
		w.F64(s.lo)
		w.F64(s.hi)
		w.Bool(s.nov != nil)
		if nv := s.nov; nv != nil {
			w.Len(nv.dim)
			w.Len(nv.kept)
			w.Len(nv.next)
			w.F64s(nv.emb)
			nv.dist.appendState(w)
			nv.h.appendState(w)
		}
		return true
	})
}

// LoadState restores what AppendState wrote. The novelty settings must be
// those it was written with.
func (a *Anomaly) LoadState(r *binenc.Reader) error {
	if v := r.U32(); r.Err() == nil && v != anomalyStateVersion {
		return fmt.Errorf("anomaly state version %d, this build reads %d", v, anomalyStateVersion)
	}
	c := &a.cfg
	series := lru.New[*anomSeries](c.MaxSeries)
	n := r.Len(c.MaxSeries, 8)
	for i := 0; i < n && r.Err() == nil; i++ {
		k := r.String(1 << 16)
		s := &anomSeries{n: r.I64()}
		s.err.loadState(r)
		s.val.loadState(r)
		s.errH.loadState(r)
		s.lo, s.hi = r.F64(), r.F64()
		if r.Bool() {
			nv := &anomNovelty{dim: r.Len(1<<16, 0), kept: r.Len(anomMaxNoveltyK, 0), next: r.Len(anomMaxNoveltyK, 0)}
			nv.emb = r.F64s(nil, anomMaxNoveltyK<<16)
			nv.dist.loadState(r)
			nv.h.loadState(r)
			if r.Err() == nil && (nv.dim < 1 || len(nv.emb) != c.NoveltyK*nv.dim || nv.kept > c.NoveltyK || nv.next >= max(c.NoveltyK, 1)) {
				return fmt.Errorf("anomaly state of %q keeps %d embeddings of %d values, the configuration keeps %d (novelty k)",
					k, len(nv.emb)/max(nv.dim, 1), nv.dim, c.NoveltyK)
			}
			s.nov = nv
		}
		if r.Err() == nil && s.n < 0 {
			r.Fail("anomaly state of %q: negative point count", k)
		}
		if r.Err() == nil {
			series.Put(k, s)
		}
	}
	if r.Err() != nil {
		return r.Err()
	}
	a.series = series
	return nil
}

func (s *anomStat) appendState(w *binenc.Writer) {
	w.F64(s.mean)
	w.F64(s.vr)
	w.F64(s.n)
}

func (s *anomStat) loadState(r *binenc.Reader) { s.mean, s.vr, s.n = r.F64(), r.F64(), r.F64() }

func (h *anomHist) appendState(w *binenc.Writer) {
	for _, v := range h.bins {
		w.F64(v)
	}
	w.F64(h.mass)
	w.F64(h.unit)
}

func (h *anomHist) loadState(r *binenc.Reader) {
	for k := range h.bins {
		h.bins[k] = r.F64()
	}
	h.mass, h.unit = r.F64(), r.F64()
}
