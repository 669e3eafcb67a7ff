package models

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/internal/lru"
)

// SSLConfig configures the self-supervised learner. Start from
// DefaultSSLConfig: every field is used as given (a zero loss weight turns
// that objective off).
type SSLConfig struct {
	// Name is the value of the model tag of what the learner writes.
	Name string
	// Length is the window length (window.length). Batches of another
	// length are refused.
	Length int
	// Stride is the windowing stride (window.stride); the imputation output
	// rule uses it so that each gap is written once.
	Stride int
	// Multichannel says the batches come from windowing's multichannel
	// mode: the rows of one measurement + tag set are adjacent, so the
	// encoder and the imputation can read the other channels.
	Multichannel bool

	// Dim is the embedding size; Hidden the width of the encoder's
	// convolutions; Blocks its residual blocks (dilations 1, 2, …,
	// 2^(Blocks−1)).
	Dim, Hidden, Blocks int
	// TrainBatch is the number of windows of one optimiser step of the
	// encoder (the other windows of the step are the instance-level
	// negatives).
	TrainBatch int
	// MaxSeries caps the per-series state held (least recently seen
	// evicted).
	MaxSeries int
	// LearningRate of Adam; ClipNorm caps the global gradient norm.
	LearningRate float64
	ClipNorm     float64
	// Temperature of the instance-level InfoNCE.
	Temperature float64
	// WeightHier and WeightInstance weigh TS2Vec's hierarchical
	// contrastive loss and the seed's instance-level InfoNCE.
	WeightHier, WeightInstance float64
	// KeepShare is the share of timesteps a training view keeps (the
	// others are masked: TS2Vec's 0.5).
	KeepShare float64

	// ARLags is the order of the forecast's linear experts (at most
	// Length-2); Forgettings their forgetting factors.
	ARLags      int
	Forgettings []float64
	// SeasonalForgettings are the forgetting factors of the long-lag
	// expert (empty: none), which also reads lags k·ARLags−1 … k·ARLags+1
	// for k = 2 … SeasonalCycles.
	SeasonalForgettings []float64
	SeasonalCycles      int
	// MixRate and MixDecay set the mixture's weights: ∝ exp(−MixRate·L),
	// L the MixDecay-discounted sum of an expert's squared errors.
	MixRate, MixDecay float64

	// ImputeNeighbours is how many slots each side of a gap the imputation
	// model reads; ImputeForgetting its RLS forgetting factor.
	ImputeNeighbours int
	ImputeForgetting float64
	// MaskMin and MaskMax bound the share of a training window's observed
	// points hidden for the imputation objective (drawn per window).
	MaskMin, MaskMax float64
	// ImputeTrainPoints is how many hidden points of a window the
	// imputation model learns from, every ImputeEvery windows.
	ImputeTrainPoints int
	ImputeEvery       int

	// EmbedEvery emits the embedding of windows whose seq is a multiple of it.
	EmbedEvery int
	// TrainEvery learns from every TrainEvery-th window of a series, at an
	// offset of its own (trainsOn; every window is still predicted).
	TrainEvery int
	// Epoch is the event-time length of an encoder round (ns): the windows
	// a partition processes while its clock is in epoch r are embedded
	// with the group's encoder version r (see Sync).
	Epoch int64
	// Sync shares the encoder with the other partitions of the group; nil
	// keeps it to this learner (version 0 throughout).
	Sync EncoderSync
	// Partition names this learner's partition in Sync.
	Partition string
	// OnWait, if set, is called with true when the learner starts to wait
	// for the group's encoder version, and with false when it stops.
	OnWait func(waiting bool)
	// MaxDeferred bounds the windows whose embedding and training wait for
	// the group's next encoder version (each holds its encoder input); past
	// it the learner waits for the version itself.
	MaxDeferred int
	// Seed seeds the encoder's weights and the augmentations.
	Seed uint64
}

// DefaultSSLConfig returns the default configuration for windows of the
// given length and stride.
func DefaultSSLConfig(name string, length, stride int) SSLConfig {
	return SSLConfig{
		Name:                name,
		Length:              length,
		Stride:              stride,
		Dim:                 32,
		Hidden:              16,
		Blocks:              4,
		TrainBatch:          32,
		MaxSeries:           10000,
		LearningRate:        1e-3,
		ClipNorm:            1,
		Temperature:         0.2,
		WeightHier:          1,
		WeightInstance:      0.5,
		KeepShare:           0.5,
		ARLags:              max(1, min(24, length-2)),
		Forgettings:         []float64{0.99, 0.999, 0.9999},
		SeasonalForgettings: []float64{0.9999},
		SeasonalCycles:      7,
		MixRate:             2,
		MixDecay:            0.995,
		ImputeNeighbours:    4,
		ImputeForgetting:    0.9999,
		MaskMin:             0.1,
		MaskMax:             0.6,
		ImputeTrainPoints:   4,
		ImputeEvery:         2,
		EmbedEvery:          1,
		TrainEvery:          1,
		Epoch:               24 * 3600e9,
		MaxDeferred:         20000,
		Seed:                1,
	}
}

// Validate reports the first field out of range.
func (c *SSLConfig) Validate() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("ssl config: "+format, a...) }
	okF := func(fs []float64) bool {
		for _, f := range fs {
			if !(f > 0 && f <= 1) {
				return false
			}
		}
		return true
	}
	switch {
	case c.Length < 4:
		return bad("length %d must be at least 4", c.Length)
	case c.Stride < 1:
		return bad("stride %d must be at least 1", c.Stride)
	case c.Dim < 1 || c.Hidden < 1 || c.Blocks < 1 || c.Blocks > 12:
		return bad("dim %d, hidden %d must be at least 1, blocks %d in [1, 12]", c.Dim, c.Hidden, c.Blocks)
	case c.TrainBatch < 2:
		return bad("train batch %d must be at least 2 (the contrastive objectives need negatives)", c.TrainBatch)
	case c.MaxSeries < 1:
		return bad("max series %d must be at least 1", c.MaxSeries)
	case !(c.LearningRate > 0) || !(c.ClipNorm > 0) || !(c.Temperature > 0):
		return bad("learning rate, clip norm and temperature must be positive")
	case !(c.WeightHier >= 0 && c.WeightInstance >= 0):
		return bad("loss weights must not be negative")
	case !(c.KeepShare > 0 && c.KeepShare <= 1):
		return bad("keep share %v must be in (0, 1]", c.KeepShare)
	case c.ARLags < 1 || c.ARLags > c.Length-2:
		return bad("ar lags %d must be in [1, length-2=%d]", c.ARLags, c.Length-2)
	case len(c.Forgettings) == 0 || !okF(c.Forgettings) || !okF(c.SeasonalForgettings):
		return bad("forgetting factors %v, %v must be in (0, 1] (at least one)", c.Forgettings, c.SeasonalForgettings)
	case len(c.SeasonalForgettings) > 0 && (c.SeasonalCycles < 2 || c.SeasonalCycles > 64):
		return bad("seasonal cycles %d must be in [2, 64]", c.SeasonalCycles)
	case !(c.MixRate >= 0) || !(c.MixDecay > 0 && c.MixDecay <= 1):
		return bad("mix rate %v must be >= 0 and mix decay %v in (0, 1]", c.MixRate, c.MixDecay)
	case c.ImputeNeighbours < 1 || c.ImputeNeighbours > c.Length/2:
		return bad("impute neighbours %d must be in [1, length/2]", c.ImputeNeighbours)
	case !(c.ImputeForgetting > 0 && c.ImputeForgetting <= 1):
		return bad("impute forgetting %v must be in (0, 1]", c.ImputeForgetting)
	case !(c.MaskMin >= 0 && c.MaskMin <= c.MaskMax && c.MaskMax < 1):
		return bad("mask share range [%v, %v] must lie in [0, 1)", c.MaskMin, c.MaskMax)
	case c.ImputeTrainPoints < 0 || c.ImputeEvery < 1:
		return bad("impute train points must not be negative, impute every at least 1")
	case c.EmbedEvery < 1 || c.TrainEvery < 1:
		return bad("embed every %d and train every %d must be at least 1", c.EmbedEvery, c.TrainEvery)
	case c.Epoch <= 0:
		return bad("epoch %d must be positive", c.Epoch)
	}
	return nil
}

// SSL is the self-supervised learner. Each window is first predicted with
// what the learner knows (prequential), then learnt from:
//
//   - next-step prediction: a per-series mixture of linear experts (see
//     mixture.go), each fitted by RLS on the series' own history at a
//     forgetting factor of its own, weighed by exponentiated gradient on
//     their recent errors;
//   - imputation: the linear interpolation of a gap, corrected by a
//     per-series model of its error from both sides and from the group's
//     other channels (see imputer.go), learnt by hiding observed points;
//   - representation: a dilated causal convolution encoder (conv.go,
//     conv_encoder.go) maps each window — normalised values, observed mask,
//     and the group's other channels — to per-timestep representations,
//     max-pooled into the window's embedding. It learns, without labels,
//     from two overlapping random crops of each training window, with
//     TS2Vec's hierarchical contrastive loss on their shared timesteps and
//     the seed's instance-level InfoNCE (cosine, temperature) on their
//     pooled embeddings; the other windows of the step are the negatives.
//
// The encoder is shared by the consumer group (Sync): the windows a
// partition processes in event-time epoch r are embedded with version r,
// the merge of what every partition learnt in the epochs before; see
// shared.go. Everything else is per series, in this partition.
//
// Learning is deterministic: the same windows in the same order give the
// same state bit for bit, whatever the Arrow batch boundaries (the
// per-series work runs row by row; the encoder's products keep each
// window's column independent of the others; optimiser steps run on
// TrainBatch windows as they come).
type SSL struct {
	cfg    SSLConfig
	mix    mixConfig
	enc    *sslEncoder
	pcg    *rand.PCG
	rng    *rand.Rand
	encPCG *rand.PCG
	encRng *rand.Rand

	series *lru.Map[*sslSeries]
	train  bool

	// buf holds the training windows' encoder inputs (encoderIn ×
	// TrainBatch·Length), bufN of them, bufEnd their end times, bufSeries
	// their series (seriesID; 0: not known).
	buf       []float64
	bufN      int
	bufEnd    []int64
	bufSeries []uint64

	// shared encoder rounds
	epoch   int64  // the epoch this learner's clock is in (math.MinInt64: none yet)
	version int64  // the encoder version it embeds with
	windows uint64 // windows processed, for recorded closes
	pending []Close
	idle    bool // declared idle (the idle rule) and not resumed since
	// target is the learner's clock: the epoch its newest window belongs
	// to; want the epoch it closed the epochs before and waits for the
	// version of (math.MinInt64: not waiting); queue the windows whose
	// embedding or training waits for it, by epoch.
	target int64
	want   int64
	queue  []deferred
	delta  []float64
	// loss sums the prequential losses of the windows in the training
	// buffer: their forecasts' and their imputation objective's squared
	// errors (normalised units).
	loss lossAcc

	out Output
	ws  sslWork
}

// sslSeries is the state of one series.
type sslSeries struct {
	norm   Normaliser
	folded int64 // newest slot time folded into the statistics and history
	scale  float64
	hist   []float64 // the last mix.history() values in fixed units (NaN: gap), oldest first
	mix    *mixer
	imp    *imputer
	// pending forecast
	pendOK   bool
	pendTime int64
	pendLast float64 // the last value it was made from, fixed units
	pendPred float64 // the change forecast, fixed units
}

// NewSSL returns a learner with freshly initialised weights.
func NewSSL(cfg SSLConfig) (*SSL, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	enc, err := newSSLEncoder(&cfg)
	if err != nil {
		return nil, err
	}
	l := &SSL{
		cfg: cfg, enc: enc, train: true, epoch: math.MinInt64, target: math.MinInt64, want: math.MinInt64,
		mix: mixConfig{
			Order: cfg.ARLags, Forgettings: cfg.Forgettings, SeasonalForgettings: cfg.SeasonalForgettings,
			SeasonalCycles: cfg.SeasonalCycles, MixRate: cfg.MixRate, MixDecay: cfg.MixDecay,
		},
		series:    lru.New[*sslSeries](cfg.MaxSeries),
		buf:       make([]float64, encoderIn*cfg.TrainBatch*cfg.Length),
		bufEnd:    make([]int64, cfg.TrainBatch),
		bufSeries: make([]uint64, cfg.TrainBatch),
	}
	// Two random streams: the imputation objective's masks draw one per
	// window as windows come; the encoder's crops and masks draw at its
	// optimiser steps, which a shared encoder may defer. Kept apart, their
	// draws do not depend on how the two interleave.
	l.pcg = rand.NewPCG(cfg.Seed, 0x7473726570) // "tsrep"
	l.rng = rand.New(l.pcg)
	l.encPCG = rand.NewPCG(cfg.Seed, 0x63726f7073) // "crops"
	l.encRng = rand.New(l.encPCG)
	l.out.Dim = cfg.Dim
	l.out.Length = cfg.Length
	return l, nil
}

// Name implements Learner.
func (l *SSL) Name() string { return l.cfg.Name }

// Config returns the learner's configuration.
func (l *SSL) Config() SSLConfig { return l.cfg }

// Steps is the number of optimiser steps the encoder took.
func (l *SSL) Steps() uint64 { return l.enc.adamT }

// EncoderParams returns a copy of the encoder's current weights.
func (l *SSL) EncoderParams() []float64 { return slices.Clone(l.enc.params) }

// SetTraining turns learning of the encoder on or off. Off, Step still
// predicts and keeps the per-series models up to date, but no window is
// buffered and no optimiser step runs (for embedding a fixed data set with
// frozen weights).
func (l *SSL) SetTraining(on bool) { l.train = on }

// sslWork holds the per-batch workspaces.
type sslWork struct {
	ser   []*sslSeries
	z     [][]float64 // per row: normalised values, NaN for gaps
	ip    [][]float64 // per row: interpolated
	mean  []float64
	std   []float64
	emb   []int     // rows whose embedding is computed in the current segment
	x     []float64 // encoder inputs of emb
	e     []float64 // their embeddings
	dense []float64
	long  []float64
	w     []float64
	feat  []float64
	ctxM  []float64 // group context: mean of the others
	ctxF  []float64 // and share observed
	imp   imputeCtx
	// hidZ and hidI hold a training window's channels with points hidden,
	// and their interpolations (trainImpute; reused across windows).
	hidZ, hidI [][]float64
	// oz and oi list the other channels of one of them.
	oz, oi [][]float64
	// fold holds the values a window adds to its series' history.
	fold []float64
	// rowLoss holds each row's prequential losses (its forecast's squared
	// error, its group's imputation objective's): reported with the
	// optimiser step that learns from the row.
	rowLoss []lossAcc
	grpZ    [][]float64
	grpI    [][]float64
}

// Step implements Learner.
func (l *SSL) Step(rec arrow.RecordBatch) (*Output, error) {
	return l.StepContext(context.Background(), rec)
}

// StepContext implements ContextStepper: with a Sync, moving into a new
// epoch waits (until ctx ends) for the group's encoder version.
func (l *SSL) StepContext(ctx context.Context, rec arrow.RecordBatch) (*Output, error) {
	b, err := View(rec)
	if err != nil {
		return nil, err
	}
	if b.Length != l.cfg.Length {
		return nil, fmt.Errorf("window length %d, the ssl learner was configured for %d", b.Length, l.cfg.Length)
	}
	l.out.reset(b.Rows)
	l.out.Version = fillI64(l.out.Version, b.Rows)
	l.prepare(b.Rows)
	w := &l.ws
	w.emb = w.emb[:0]
	l.out.Late = l.out.Late[:0]
	L, TB := l.cfg.Length, l.cfg.TrainBatch
	for g0 := 0; g0 < b.Rows; {
		g1 := l.groupEnd(&b, g0)
		now := true // the encoder is at this window's version
		if l.cfg.Sync != nil {
			// Before the encoder moves on, the windows so far are
			// embedded with the version they were predicted under.
			var err error
			if now, err = l.clock(ctx, &b, g0, func() { l.embedPending(&b) }); err != nil {
				return nil, err
			}
		}
		for i := g0; i < g1; i++ {
			l.sequential(&b, i)
		}
		for i := g0; i < g1; i++ {
			l.forecast(&b, i)
			l.impute(&b, i, g0, g1)
			l.out.Version[i] = l.version
			if b.Seq[i]%uint64(l.cfg.EmbedEvery) == 0 {
				if now {
					l.out.EmitEmbedding[i] = true
					w.emb = append(w.emb, i)
				} else {
					l.defer1(&b, i, g0, g1, false)
				}
			}
		}
		if l.train {
			if b.Seq[g0]%uint64(l.cfg.ImputeEvery) == 0 {
				l.trainImpute(&b, g0, g0, g1)
			}
			for i := g0; i < g1; i++ {
				if !l.trainsOn(&b, i) {
					continue
				}
				if !now {
					l.defer1(&b, i, g0, g1, true)
					l.queue[len(l.queue)-1].loss = w.rowLoss[i]
					continue
				}
				l.encoderInput(&b, i, g0, g1, newMat(encoderIn, TB*L, l.buf), l.bufN)
				l.bufEnd[l.bufN] = int64(b.End[i])
				l.bufSeries[l.bufN] = seriesID(b.Key(i))
				l.bufN++
				l.loss.add(w.rowLoss[i])
				if l.bufN == TB {
					l.embedPending(&b) // with the weights the rows were predicted with
					l.out.Train = append(l.out.Train, l.step())
				}
			}
		}
		l.windows += uint64(g1 - g0)
		g0 = g1
		if len(l.queue) > l.cfg.MaxDeferred {
			// Too much waits for the group: wait for it here.
			l.embedPending(&b)
			if err := l.catchUp(ctx, true); err != nil {
				return nil, err
			}
		}
	}
	l.embedPending(&b)
	if l.cfg.Sync != nil && len(l.queue) > 0 {
		if err := l.catchUp(ctx, false); err != nil {
			return nil, err
		}
	}
	return &l.out, nil
}

// trainsOn says whether the encoder learns from row i's window: every
// TrainEvery-th window of its series, at an offset drawn from the series'
// key (FNV-1a). The offset spreads the training over the series' windows:
// series that start together (a new deployment, a backfill, a burst of
// new hosts) do not all learn from the same window of theirs at once, and
// which windows are learnt from is still a function of the input alone.
func (l *SSL) trainsOn(b *Batch, i int) bool {
	n := uint64(l.cfg.TrainEvery)
	if n == 1 {
		return true
	}
	return (b.Seq[i]+fnv1a(b.Key(i)))%n == 0
}

// seriesID identifies a training window's series within a step (never
// 0, which stands for a series not known).
func seriesID(key string) uint64 { return fnv1a(key) | 1 }

// fnv1a is the 64-bit FNV-1a hash of s.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// groupEnd returns the end of the group of rows starting at g0: in
// multichannel mode the adjacent rows of one measurement + tag set and
// window, otherwise the row alone.
func (l *SSL) groupEnd(b *Batch, g0 int) int {
	if !l.cfg.Multichannel {
		return g0 + 1
	}
	p0 := seriesPrefix(b.Key(g0))
	g1 := g0 + 1
	for g1 < b.Rows && b.End[g1] == b.End[g0] && b.Seq[g1] == b.Seq[g0] && seriesPrefix(b.Key(g1)) == p0 {
		g1++
	}
	return g1
}

// seriesPrefix is a series key without its field (the part before the
// last unescaped '#').
func seriesPrefix(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '#' {
			n := 0
			for j := i - 1; j >= 0 && key[j] == '\\'; j-- {
				n++
			}
			if n%2 == 0 {
				return key[:i]
			}
		}
	}
	return key
}

func (l *SSL) prepare(rows int) {
	w := &l.ws
	if cap(w.ser) < rows {
		w.ser = make([]*sslSeries, rows)
	}
	w.ser = w.ser[:rows]
	L := l.cfg.Length
	for len(w.z) < rows {
		w.z = append(w.z, make([]float64, L))
		w.ip = append(w.ip, make([]float64, L))
	}
	w.mean = grow(w.mean, rows)
	w.std = grow(w.std, rows)
	w.dense = grow(w.dense, l.mix.denseDim())
	w.long = grow(w.long, l.mix.longDim())
	w.w = grow(w.w, l.mix.experts())
	w.ctxM = grow(w.ctxM, L)
	w.ctxF = grow(w.ctxF, L)
	if cap(w.rowLoss) < rows {
		w.rowLoss = make([]lossAcc, rows)
	}
	w.rowLoss = w.rowLoss[:rows]
	clear(w.rowLoss)
}

// sequential runs the per-series bookkeeping of row i in arrival order:
// the normalisation and the fold of the window's new slots into the
// statistics and the history.
func (l *SSL) sequential(b *Batch, i int) {
	L := l.cfg.Length
	key := b.Key(i)
	s, ok := l.series.GetString(key)
	if !ok {
		s = &sslSeries{folded: math.MinInt64, mix: newMixer(&l.mix), hist: make([]float64, l.mix.history())}
		for k := range s.hist {
			s.hist[k] = math.NaN()
		}
		l.series.Put(strings.Clone(key), s)
	}
	l.ws.ser[i] = s
	row := b.Row(i)
	if s.norm.N == 0 {
		for j := 0; j < L; j++ {
			if usable(b, i, j) {
				s.norm.Add(row[j])
			}
		}
		s.scale = s.norm.Std()
	}
	mean, std := s.norm.Mean, s.norm.Std()
	l.ws.mean[i], l.ws.std[i] = mean, std
	z, ip := l.ws.z[i], l.ws.ip[i]
	for j := 0; j < L; j++ {
		z[j] = math.NaN()
		if usable(b, i, j) {
			z[j] = (row[j] - mean) / std
		}
	}
	interpolate(z, ip)
	// Fold the slots newer than the last folded one into the statistics
	// (after normalising this window, so a window is normalised with what
	// came before it) and the history, in fixed units.
	// The new values are gathered first and shifted into the history at
	// once: a window brings Stride of them, and shifting the history for
	// each was a tenth of the learner's time.
	ivl := int64(b.Interval[i])
	add := l.ws.fold[:0]
	for j := 0; j < L; j++ {
		t := b.SlotTime(i, j)
		if t <= s.folded {
			continue
		}
		if s.folded != math.MinInt64 && ivl > 0 {
			for skip := min((t-s.folded)/ivl-1, int64(len(s.hist))); skip > 0; skip-- {
				add = append(add, math.NaN())
			}
		}
		v := math.NaN()
		if usable(b, i, j) {
			s.norm.Add(row[j])
			v = row[j] / s.scale
		}
		add = append(add, v)
		s.folded = t
	}
	s.push(add)
	l.ws.fold = add
}

// push appends values to the series' history, the oldest falling out.
func (s *sslSeries) push(v []float64) {
	h := s.hist
	if len(v) >= len(h) {
		copy(h, v[len(v)-len(h):])
		return
	}
	copy(h, h[len(v):])
	copy(h[len(h)-len(v):], v)
}

// forecast resolves row i's series' pending forecast, lets the experts
// learn the window's newest point, and forecasts the next slot.
func (l *SSL) forecast(b *Batch, i int) {
	s := l.ws.ser[i]
	h := s.hist
	n := len(h)
	end := int64(b.End[i])
	if s.folded != end {
		// A window older than the newest folded slot (a late window):
		// nothing new to learn; its forecast repeats its last value.
		l.out.Forecast[i] = lastUsable(b, i)
		return
	}
	// The pending forecast was of slot pendTime; the history now ends at
	// end, so that slot is k slots back.
	ivl := int64(b.Interval[i])
	if s.pendOK && ivl > 0 && s.pendTime <= end {
		k := int((end - s.pendTime) / ivl)
		if k < n && end-int64(k)*ivl == s.pendTime && !math.IsNaN(h[n-1-k]) {
			y := h[n-1-k] - s.pendLast
			s.mix.score(&l.mix, y, l.ws.std[i]/s.scale)
			e := (y - s.pendPred) * s.scale / l.ws.std[i]
			l.ws.rowLoss[i].f, l.ws.rowLoss[i].fn = e*e, 1
		}
		s.pendOK = false
	}
	// Learn the newest point from the history before it.
	dense, long := l.ws.dense, l.longBuf()
	if _, ok := l.mix.features(h[:n-1], dense, long); ok && !math.IsNaN(h[n-1]) {
		s.mix.learn(&l.mix, dense, long, h[n-1]-h[n-2])
	}
	last, ok := l.mix.features(h, dense, long)
	if !ok {
		// The window ends in a gap: repeat its last observed value, and
		// score no expert on it.
		l.out.Forecast[i] = lastUsable(b, i)
		return
	}
	s.mix.predict(&l.mix, dense, long)
	d := s.mix.combine(&l.mix, 0, l.ws.w)
	l.out.Forecast[i] = (last + d) * s.scale
	s.pendOK, s.pendTime, s.pendLast, s.pendPred = true, end+ivl, last, d
}

func (l *SSL) longBuf() []float64 {
	if len(l.mix.SeasonalForgettings) == 0 {
		return nil
	}
	return l.ws.long
}

// others returns the normalised values and interpolations of the other
// rows of row i's group.
func (l *SSL) others(i, g0, g1 int) ([][]float64, [][]float64) {
	w := &l.ws
	w.grpZ, w.grpI = w.grpZ[:0], w.grpI[:0]
	for j := g0; j < g1 && len(w.grpZ) < MaxImputeChannels; j++ {
		if j != i {
			w.grpZ = append(w.grpZ, w.z[j])
			w.grpI = append(w.grpI, w.ip[j])
		}
	}
	return w.grpZ, w.grpI
}

// imputerOf returns row i's series' imputation model, sized for the
// group's other channels (a group that gained or lost channels starts a
// new model).
func (l *SSL) imputerOf(s *sslSeries, others int) *imputer {
	if s.imp == nil || s.imp.others != others {
		s.imp = newImputer(l.cfg.ImputeNeighbours, others, l.cfg.ImputeForgetting)
	}
	return s.imp
}

// writeRange is the range of window slots [lo, hi) whose gaps row i writes
// out: the middle Stride slots of the window (each slot of a series is the
// middle of exactly one window when windows come every Stride slots), and
// for a series' first window (seq 0) also the slots before them.
func (l *SSL) writeRange(seq uint64) (lo, hi int) {
	L, S := l.cfg.Length, l.cfg.Stride
	if S >= L {
		return 0, L
	}
	lo = (L - S) / 2
	hi = lo + S
	if seq == 0 {
		lo = 0
	}
	return lo, hi
}

// impute fills the gaps row i writes out.
func (l *SSL) impute(b *Batch, i, g0, g1 int) {
	lo, hi := l.writeRange(b.Seq[i])
	w := &l.ws
	z := w.z[i]
	var m *imputer
	for j := lo; j < hi; j++ {
		if !math.IsNaN(z[j]) {
			continue
		}
		if m == nil {
			oz, oi := l.others(i, g0, g1)
			m = l.imputerOf(w.ser[i], len(oz))
			w.imp = imputeCtx{z: z, ip: w.ip[i], others: oz, othersI: oi}
		}
		if math.IsNaN(z[j]) && allNaN(z) {
			continue
		}
		w.feat = imputeFeatures(&w.imp, j, l.cfg.ImputeNeighbours, w.feat)
		v := w.ip[i][j] + m.rls.Predict(w.feat)
		l.out.Imputed[i*l.cfg.Length+j] = w.mean[i] + v*w.std[i]
	}
}

// lastUsable is row i's newest finite observed value (NaN if none).
func lastUsable(b *Batch, i int) float64 {
	for j := b.Length - 1; j >= 0; j-- {
		if usable(b, i, j) {
			return b.Row(i)[j]
		}
	}
	return math.NaN()
}

func allNaN(z []float64) bool {
	for _, v := range z {
		if !math.IsNaN(v) {
			return false
		}
	}
	return true
}

// trainImpute is the imputation objective on a training window: a random
// share of the observed points of every channel of the group is hidden,
// and row i's model learns to reconstruct up to ImputeTrainPoints of its
// hidden ones (from the masked window and the masked other channels).
func (l *SSL) trainImpute(b *Batch, i, g0, g1 int) {
	if l.cfg.ImputeTrainPoints == 0 || i != g0 {
		return // one draw per group, made on its first row
	}
	w := &l.ws
	L := l.cfg.Length
	n := g1 - g0
	// Masked copies of the group's rows.
	for len(w.hidZ) < n {
		w.hidZ = append(w.hidZ, make([]float64, L))
		w.hidI = append(w.hidI, make([]float64, L))
	}
	hz, hi := w.hidZ[:0], w.hidI[:0]
	// The share of points a training window misses in all (its own gaps
	// and those hidden) is drawn from [MaskMin, MaskMax]: a window already
	// sparser than the draw is not made sparser still, so that the model
	// learns on the sparsity it will meet, also when it keeps learning on
	// windows that miss much.
	target := l.cfg.MaskMin + (l.cfg.MaskMax-l.cfg.MaskMin)*l.rng.Float64()
	missing := 0
	for r := g0; r < g1; r++ {
		for _, v := range w.z[r] {
			if math.IsNaN(v) {
				missing++
			}
		}
	}
	m := float64(missing) / float64(n*L)
	if m >= target {
		return
	}
	share := (target - m) / (1 - m)
	for r := g0; r < g1; r++ {
		k := r - g0
		z, ip := w.hidZ[k], w.hidI[k]
		copy(z, w.z[r])
		for j := range z {
			if !math.IsNaN(z[j]) && l.rng.Float64() < share {
				z[j] = math.NaN()
			}
		}
		interpolate(z, ip)
		hz, hi = append(hz, z), append(hi, ip)
	}
	for r := g0; r < g1; r++ {
		k := r - g0
		oz, oi := w.oz[:0], w.oi[:0]
		for o := 0; o < n && len(oz) < MaxImputeChannels; o++ {
			if o != k {
				oz, oi = append(oz, hz[o]), append(oi, hi[o])
			}
		}
		w.oz, w.oi = oz, oi
		m := l.imputerOf(w.ser[r], len(oz))
		ctx := imputeCtx{z: hz[k], ip: hi[k], others: oz, othersI: oi}
		// Learn the hidden points nearest the window's middle, where the
		// output rule writes gaps: both sides are in view there.
		if allNaN(hz[k]) {
			continue // nothing left to learn from
		}
		mid := L / 2
		learnt := 0
		for d := 0; d < L && learnt < l.cfg.ImputeTrainPoints; d++ {
			for _, j := range [2]int{mid - d, mid + d} {
				if j < 0 || j >= L || (d == 0 && j != mid) || learnt >= l.cfg.ImputeTrainPoints {
					continue
				}
				if math.IsNaN(hz[k][j]) && !math.IsNaN(w.z[r][j]) {
					w.feat = imputeFeatures(&ctx, j, l.cfg.ImputeNeighbours, w.feat)
					e := m.rls.Update(w.feat, w.z[r][j]-hi[k][j])
					l.ws.rowLoss[g0].i += e * e
					l.ws.rowLoss[g0].in++
					learnt++
				}
			}
		}
	}
}

// encoderInput writes row i's encoder input into column block k of x
// (encoderIn × n·Length): the interpolated normalised values, the observed
// mask, and the mean and observed share of the group's other channels.
func (l *SSL) encoderInput(b *Batch, i, g0, g1 int, x matrix, k int) {
	L := l.cfg.Length
	w := &l.ws
	z, ip := w.z[i], w.ip[i]
	c0 := k * L
	v, m, cm, cf := x.row(0)[c0:c0+L], x.row(1)[c0:c0+L], x.row(2)[c0:c0+L], x.row(3)[c0:c0+L]
	for j := 0; j < L; j++ {
		v[j] = clampZ(ip[j])
		m[j] = 0
		if !math.IsNaN(z[j]) {
			m[j] = 1
		}
		cm[j], cf[j] = 0, 0
	}
	if g1-g0 <= 1 {
		return
	}
	for r := g0; r < g1; r++ {
		if r == i {
			continue
		}
		for j := 0; j < L; j++ {
			cm[j] += clampZ(w.ip[r][j])
			if !math.IsNaN(w.z[r][j]) {
				cf[j]++
			}
		}
	}
	inv := 1 / float64(g1-g0-1)
	for j := 0; j < L; j++ {
		cm[j] *= inv
		cf[j] *= inv
	}
}

// maxZ bounds the encoder's inputs, in normalised units: a spike or a
// level shift cannot push them far from what the encoder was trained on.
const maxZ = 10

func clampZ(v float64) float64 { return math.Max(-maxZ, math.Min(maxZ, v)) }

// embedPending computes the embeddings of the rows collected in ws.emb
// with the current weights.
func (l *SSL) embedPending(b *Batch) {
	w := &l.ws
	n := len(w.emb)
	if n == 0 {
		return
	}
	L, D := l.cfg.Length, l.cfg.Dim
	w.x = grow(w.x, encoderIn*n*L)
	x := newMat(encoderIn, n*L, w.x)
	for k, i := range w.emb {
		g0, g1 := l.groupOf(b, i)
		l.encoderInput(b, i, g0, g1, x, k)
	}
	w.e = grow(w.e, D*n)
	E := newMat(D, n, w.e)
	l.enc.embed(x, L, E, l.cfg.Sync != nil)
	for k, i := range w.emb {
		emb := l.out.Embedding[i*D : (i+1)*D]
		for d := range emb {
			emb[d] = E.d[d*n+k]
		}
	}
	w.emb = w.emb[:0]
}

// groupOf returns the group of rows holding row i.
func (l *SSL) groupOf(b *Batch, i int) (int, int) {
	if !l.cfg.Multichannel {
		return i, i + 1
	}
	p := seriesPrefix(b.Key(i))
	g0 := i
	for g0 > 0 && b.End[g0-1] == b.End[i] && b.Seq[g0-1] == b.Seq[i] && seriesPrefix(b.Key(g0-1)) == p {
		g0--
	}
	return g0, l.groupEnd(b, g0)
}

// step runs one encoder optimiser step on the training buffer and empties
// it.
func (l *SSL) step() TrainStep {
	B, L := l.cfg.TrainBatch, l.cfg.Length
	ls := l.enc.train(newMat(encoderIn, B*L, l.buf), L, B, l.bufSeries[:B], l.encRng)
	l.bufN = 0
	mean := func(sum float64, n int) float64 {
		if n == 0 {
			return math.NaN()
		}
		return sum / float64(n)
	}
	st := TrainStep{
		Step:         l.enc.adamT,
		Time:         slices.Max(l.bufEnd),
		Windows:      B,
		LossForecast: mean(l.loss.f, l.loss.fn),
		LossImpute:   mean(l.loss.i, l.loss.in),
		LossContrast: l.cfg.WeightHier*ls.hier + l.cfg.WeightInstance*ls.instance,
	}
	l.loss = lossAcc{}
	return st
}

// lossAcc sums squared errors of the forecast (f over fn) and of the
// imputation objective (i over in).
type lossAcc struct {
	f, i   float64
	fn, in int
}

func (a *lossAcc) add(b lossAcc) {
	a.f += b.f
	a.i += b.i
	a.fn += b.fn
	a.in += b.in
}

// usable reports whether slot j of row i holds a finite observed value: a
// non-finite value is treated as a gap.
func usable(b *Batch, i, j int) bool {
	v := b.Row(i)[j]
	return b.Observed(i, j) && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// interpolate fills out with z's values, gaps (NaN) linearly interpolated
// between their observed neighbours and held flat past the first and last
// observed value (0 if none is observed). It returns the mean of the
// observed values (0 if none) and their count.
func interpolate(z, out []float64) (mean float64, n int) {
	last := -1
	var sum float64
	for j, v := range z {
		if math.IsNaN(v) {
			continue
		}
		sum += v
		n++
		switch {
		case last < 0:
			for k := 0; k < j; k++ {
				out[k] = v
			}
		case j-last > 1:
			a := z[last]
			d := (v - a) / float64(j-last)
			for k := last + 1; k < j; k++ {
				out[k] = a + d*float64(k-last)
			}
		}
		out[j] = v
		last = j
	}
	if last < 0 {
		clear(out)
		return 0, 0
	}
	for k := last + 1; k < len(z); k++ {
		out[k] = z[last]
	}
	return sum / float64(n), n
}

func fillI64(s []int64, n int) []int64 {
	if cap(s) < n {
		s = make([]int64, n)
	}
	s = s[:n]
	clear(s)
	return s
}
