package quality

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/query"
)

// UCRSet names a UCR data set's train and test files.
type UCRSet struct {
	Name        string
	Train, Test string
}

// UCRArgs reads the repr command's arguments: a TRAIN and a TEST file, or
// folders each holding NAME_TRAIN.tsv and NAME_TEST.tsv.
func UCRArgs(args []string) ([]UCRSet, error) {
	if len(args) == 2 {
		a, errA := os.Stat(args[0])
		b, errB := os.Stat(args[1])
		if errA == nil && errB == nil && !a.IsDir() && !b.IsDir() {
			name := strings.TrimSuffix(filepath.Base(args[0]), filepath.Ext(args[0]))
			name = strings.TrimSuffix(name, "_TRAIN")
			return []UCRSet{{Name: name, Train: args[0], Test: args[1]}}, nil
		}
	}
	var sets []UCRSet
	for _, d := range args {
		st, err := os.Stat(d)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("%s: give a TRAIN and a TEST file, or UCR folders", d)
		}
		train, _ := filepath.Glob(filepath.Join(d, "*_TRAIN.tsv"))
		if len(train) != 1 {
			return nil, fmt.Errorf("%s: want one *_TRAIN.tsv, found %d", d, len(train))
		}
		test := strings.TrimSuffix(train[0], "_TRAIN.tsv") + "_TEST.tsv"
		if _, err := os.Stat(test); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(train[0]), "_TRAIN.tsv")
		sets = append(sets, UCRSet{Name: name, Train: train[0], Test: test})
	}
	return sets, nil
}

// ReprOptions configure the representation measurement.
type ReprOptions struct {
	Common
	// Length is the window length, capped at the shortest series.
	Length int
	Stride int
	// Pyramid is the number of levels of the temporal pooling pyramid.
	Pyramid int
	// LevelDecay and MaxWeight weigh the pooled vector's blocks in the
	// 1-NN similarity, after its per-dimension scaling: a block of a
	// pyramid level with n runs weighs n^-LevelDecay, the max block
	// MaxWeight (see poolWeights). The probes see the pooled vector as is.
	LevelDecay float64
	MaxWeight  float64
	// MinSteps raises the number of passes over a small train set until
	// the learner has taken at least this many optimiser steps.
	MinSteps int
	// Seeds is the number of times the learner is trained and evaluated,
	// with seeds Model.Seed, Model.Seed+1, ...; its figures are the mean
	// over them (0 means 1). Baselines run once.
	Seeds int
	// Partitions splits the learning over this many partition learners
	// sharing one encoder, as a consumer group's partitions do (see
	// repr_shared.go); 0 or 1: one learner.
	Partitions int
	// EpochPoints is the length of the partitions' encoder epoch, in
	// points of a series (the harness places one point per second of
	// event time; 0: a quarter of a pass, at least a window). Merge is
	// the partitions' merge (model.merge and model.merge_rate; a zero
	// Rate: 1).
	EpochPoints int
	Merge       models.MergeRule
	// MiniRocketSeed seeds MiniRocket's choice of series for its biases.
	MiniRocketSeed uint64
	// Anchors is a CSV of published accuracies (see ReadAnchors); empty:
	// ANCHORS.csv in the folder that holds each set's folder, if there.
	Anchors string
}

// ReprFigure is one method's test accuracy on one set.
type ReprFigure struct {
	Method string `json:"method"`
	Kind   string `json:"kind"` // "learner", "baseline" or "published"
	// Accuracy is the share of test series classified right; for the
	// learner, the mean over the seeds.
	Accuracy float64 `json:"accuracy"`
	// Seeds is the learner's accuracy at each seed (nil for the others).
	Seeds *SeedSpread `json:"over_seeds,omitempty"`
}

// SeedSpread is an accuracy at each seed, in seed order, and its range and
// sample standard deviation (0 for one seed).
type SeedSpread struct {
	PerSeed []float64 `json:"accuracy_per_seed"`
	Min     float64   `json:"accuracy_min"`
	Max     float64   `json:"accuracy_max"`
	Std     float64   `json:"accuracy_std"`
}

// newSeedSpread summarises per-seed accuracies.
func newSeedSpread(perSeed []float64) *SeedSpread {
	s := &SeedSpread{PerSeed: perSeed, Min: floats.Min(perSeed), Max: floats.Max(perSeed)}
	if len(perSeed) > 1 {
		s.Std = stat.StdDev(perSeed, nil)
	}
	return s
}

// ReprSet is the outcome on one data set.
type ReprSet struct {
	Name    string       `json:"name"`
	Train   int          `json:"train_series"`
	Test    int          `json:"test_series"`
	Classes int          `json:"classes"`
	Length  int          `json:"series_length"` // the longest series
	Window  int          `json:"window"`
	Epochs  int          `json:"epochs"`
	Steps   uint64       `json:"train_steps"` // at the first seed
	Figures []ReprFigure `json:"figures"`
	// LearnerSeconds is the learner's wall time per seed (mean):
	// unsupervised training, embedding the train and test series, and the
	// classifiers. MiniRocketSeconds is MiniRocket's: transform,
	// ridge classifier and prediction. Seconds is the whole set's.
	LearnerSeconds    float64 `json:"learner_seconds"`
	MiniRocketSeconds float64 `json:"minirocket_seconds,omitempty"`
	Seconds           float64 `json:"seconds"`
}

// ReprMean is one method's mean accuracy over the sets that have it.
type ReprMean struct {
	Method   string  `json:"method"`
	Kind     string  `json:"kind"`
	Accuracy float64 `json:"accuracy"`
	// Seeds is, for the learner, the mean over the sets at each seed.
	Seeds *SeedSpread `json:"over_seeds,omitempty"`
	Sets  int         `json:"sets"`
	// AtOrAboveRaw counts the sets where a measured method's accuracy is
	// at or above 1-NN Euclidean on the raw series.
	AtOrAboveRaw *int `json:"sets_at_or_above_raw_1nn_euclidean,omitempty"`
}

// ReprResult is the outcome of RunRepr.
type ReprResult struct {
	Sets  []ReprSet  `json:"sets"`
	Means []ReprMean `json:"means"`
	// Seeds are the learner's seeds.
	Seeds          []uint64 `json:"seeds"`
	MiniRocketSeed uint64   `json:"minirocket_seed"`
	// Anchors are the files the published figures come from.
	Anchors  []string `json:"anchors,omitempty"`
	Seconds  float64  `json:"seconds"`
	Protocol string   `json:"protocol"`
}

// Method names of the repr table, in table order.
const (
	methodNNCos      = "1-NN on pooled embeddings by tsrep query similar's similarity (cosine, each dimension scaled by 1/std over the train series), the pooling's blocks weighed"
	methodNNCosPlain = "1-NN plain cosine on pooled embeddings"
	methodProbe      = "linear probe (ridge, LOO-CV) on pooled embeddings"
	methodLogReg     = "linear probe (logistic, 5-fold CV) on pooled embeddings"
	methodSVM        = "SVM probe (RBF kernel, C by 5-fold CV; TS2Vec's protocol) on pooled embeddings"
	methodNNRaw      = "1-NN Euclidean on raw series"
	methodMiniRocket = "MiniRocket (10k PPV features, ridge LOO-CV)"
)

// RunRepr learns from each set's train series without labels (Epochs
// passes, the series' points interleaved so that a micro-batch mixes
// series), then, with the weights frozen, embeds every train and test
// series: the embeddings of its windows pooled over the series (see pool).
// The test series are classified by 1-NN (cosine) and by two linear probes
// fitted on the train embeddings (a ridge classifier and a multinomial
// logistic regression), once per seed. The baselines run once in the same
// run: 1-NN Euclidean on the raw series and MiniRocket; the published
// anchors of the set (see ReadAnchors) are listed beside them.
func RunRepr(o ReprOptions, sets []UCRSet) (*ReprResult, error) {
	t0 := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Seeds < 0 {
		return nil, fmt.Errorf("seeds %d must be at least 1", o.Seeds)
	}
	o.Pyramid = max(o.Pyramid, 1)
	if o.LevelDecay < 0 || o.MaxWeight < 0 {
		return nil, fmt.Errorf("level decay %g and max weight %g must not be negative", o.LevelDecay, o.MaxWeight)
	}
	o.Seeds = max(o.Seeds, 1)
	if o.Length < 3 || o.Stride < 1 {
		return nil, fmt.Errorf("window length %d must be at least 3 and stride %d at least 1", o.Length, o.Stride)
	}
	res := &ReprResult{
		MiniRocketSeed: o.MiniRocketSeed,
		Protocol: fmt.Sprintf("unsupervised training on the train series; frozen window embeddings pooled per series (means over 1, 2, ..., %d runs, and the max); ", 1<<(o.Pyramid-1)) +
			fmt.Sprintf("test accuracy of 1-NN (by tsrep query similar's similarity, the cosine with each dimension scaled by 1/std over the train series, then a block of n runs weighed n^-%g and the max %g; and by the plain cosine), of linear probes (ridge, logistic) and of an RBF SVM fitted on the train embeddings, ", o.LevelDecay, o.MaxWeight) +
			"mean over the learner's seeds; baselines in the same run: 1-NN Euclidean on the raw series, " +
			"MiniRocket (Dempster et al. 2021) with its ridge classifier; published figures from the anchors file",
	}
	for s := range o.Seeds {
		res.Seeds = append(res.Seeds, o.Model.Seed+uint64(s))
	}
	anchors := map[string]Anchors{} // by file
	for _, set := range sets {
		path := o.Anchors
		if path == "" {
			path = filepath.Join(filepath.Dir(filepath.Dir(set.Train)), "ANCHORS.csv")
		}
		a, ok := anchors[path]
		if !ok {
			var err error
			a, err = ReadAnchors(path)
			switch {
			case err == nil:
				res.Anchors = append(res.Anchors, path)
			case o.Anchors == "" && errors.Is(err, fs.ErrNotExist):
				o.logf("repr: no %s: no published figures for the sets there", path)
			default:
				return nil, err
			}
			anchors[path] = a
		}
		rs, err := runReprSet(o, set, a[strings.ToLower(set.Name)])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", set.Name, err)
		}
		res.Sets = append(res.Sets, *rs)
		o.logf("repr: %s done, %.0fs", set.Name, time.Since(t0).Seconds())
	}
	res.Means = reprMeans(res.Sets)
	res.Seconds = since(t0)
	return res, nil
}

func runReprSet(o ReprOptions, set UCRSet, published []ReprFigure) (*ReprSet, error) {
	t0 := time.Now()
	train, err := dataset.ReadUCR(set.Train)
	if err != nil {
		return nil, err
	}
	test, err := dataset.ReadUCR(set.Test)
	if err != nil {
		return nil, err
	}
	classes := map[string]bool{}
	for _, l := range train.Labels {
		classes[l] = true
	}
	rs := &ReprSet{Name: set.Name, Train: len(train.Series), Test: len(test.Series), Classes: len(classes)}
	for _, u := range []*dataset.UCR{train, test} {
		for _, s := range u.Series {
			rs.Length = max(rs.Length, len(s))
		}
	}

	learner := []ReprFigure{
		{Method: methodNNCos, Kind: "learner"},
		{Method: methodNNCosPlain, Kind: "learner"},
		{Method: methodProbe, Kind: "learner"},
		{Method: methodLogReg, Kind: "learner"},
		{Method: methodSVM, Kind: "learner"},
	}
	perSeed := make([][]float64, len(learner))
	for s := range o.Seeds {
		ts := time.Now()
		oSeed := o
		oSeed.Model.Seed = o.Model.Seed + uint64(s)
		e, err := embedReprSet(oSeed, train, test)
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", oSeed.Model.Seed, err)
		}
		if s == 0 {
			rs.Window, rs.Epochs, rs.Steps = e.window, e.epochs, e.steps
		}
		scaledDist := reprDistance(o, e.embTrain)
		for i, acc := range []float64{
			nnAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels, scaledDist),
			nnAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels, cosineDist),
			ridgeAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels),
			logregAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels),
			svmAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels),
		} {
			perSeed[i] = append(perSeed[i], acc)
		}
		rs.LearnerSeconds += time.Since(ts).Seconds() / float64(o.Seeds)
		if o.Seeds > 1 {
			o.logf("repr: %s seed %d: %.0fs", set.Name, oSeed.Model.Seed, time.Since(ts).Seconds())
		}
	}
	for i := range learner {
		learner[i].Seeds = newSeedSpread(perSeed[i])
		learner[i].Accuracy = stat.Mean(perSeed[i], nil)
	}
	rs.LearnerSeconds = math.Round(rs.LearnerSeconds*10) / 10
	rs.Figures = append(learner, ReprFigure{
		Method: methodNNRaw, Kind: "baseline",
		Accuracy: nnAccuracy(train.Series, train.Labels, test.Series, test.Labels, euclidDist),
	})
	tm := time.Now()
	if acc, err := miniRocketAccuracy(train.Series, train.Labels, test.Series, test.Labels, o.MiniRocketSeed); err != nil {
		o.logf("repr: %s: no MiniRocket figure: %v", set.Name, err)
	} else {
		rs.MiniRocketSeconds = since(tm)
		rs.Figures = append(rs.Figures, ReprFigure{Method: methodMiniRocket, Kind: "baseline", Accuracy: acc})
	}
	rs.Figures = append(rs.Figures, published...)
	rs.Seconds = since(t0)
	return rs, nil
}

// reprMeans averages each method over the sets that have it, in the order
// methods first appear.
func reprMeans(sets []ReprSet) []ReprMean {
	var means []ReprMean
	var perSeed [][]float64 // a learner method's sum over the sets at each seed
	at := map[string]int{}
	for _, s := range sets {
		raw := math.NaN()
		for _, f := range s.Figures {
			if f.Method == methodNNRaw {
				raw = f.Accuracy
			}
		}
		for _, f := range s.Figures {
			i, ok := at[f.Method]
			if !ok {
				i = len(means)
				at[f.Method] = i
				means = append(means, ReprMean{Method: f.Method, Kind: f.Kind})
				perSeed = append(perSeed, nil)
				if f.Kind != "published" && f.Method != methodNNRaw {
					means[i].AtOrAboveRaw = new(int)
				}
			}
			m := &means[i]
			m.Sets++
			m.Accuracy += f.Accuracy
			if f.Seeds != nil {
				if perSeed[i] == nil {
					perSeed[i] = make([]float64, len(f.Seeds.PerSeed))
				}
				floats.Add(perSeed[i], f.Seeds.PerSeed)
			}
			if m.AtOrAboveRaw != nil && f.Accuracy >= raw-1e-9 {
				*m.AtOrAboveRaw++
			}
		}
	}
	for i := range means {
		m := &means[i]
		m.Accuracy /= float64(m.Sets)
		if perSeed[i] != nil {
			floats.Scale(1/float64(m.Sets), perSeed[i])
			m.Seeds = newSeedSpread(perSeed[i])
		}
	}
	return means
}

// Anchors are published accuracies by lower-case set name.
type Anchors map[string][]ReprFigure

// anchorColumns are the columns of an anchors file that the table shows,
// in order, with their method names and short headers.
var anchorColumns = []struct{ column, method, short string }{
	{"minirocket_resample0", "MiniRocket (published, original split)", "MR pub"},
	{"ts2vec_timesurl_table", "TS2Vec (published; TimesURL's table)", "TS2Vec"},
	{"tloss", "T-Loss (published)", "T-Loss"},
	{"dtw", "1-NN DTW (published)", "DTW"},
	{"ed_acc_ucr", "1-NN Euclidean (UCR archive, published)", "UCR ED"},
}

// ReadAnchors reads a CSV of published accuracies: a header row whose first
// column is the data set's name, then one row per set; the columns of
// anchorColumns that it has become published figures (empty cells are
// skipped). data/UCR/ANCHORS.csv is one.
func ReadAnchors(path string) (Anchors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("anchors %s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("anchors %s: empty", path)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimSpace(h)] = i
	}
	a := Anchors{}
	for r, row := range rows[1:] {
		name := strings.ToLower(strings.TrimSpace(row[0]))
		for _, c := range anchorColumns {
			i, ok := col[c.column]
			if !ok || strings.TrimSpace(row[i]) == "" {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(row[i]), 64)
			if err != nil || v < 0 || v > 1 {
				return nil, fmt.Errorf("anchors %s:%d: %s %q is not an accuracy", path, r+2, c.column, row[i])
			}
			a[name] = append(a[name], ReprFigure{Method: c.method, Kind: "published", Accuracy: v})
		}
	}
	return a, nil
}

// reprEmbedding is a set's pooled embeddings.
type reprEmbedding struct {
	embTrain, embTest [][]float64
	window, epochs    int
	steps             uint64
}

// embedReprSet learns from the set's train series without labels, then
// embeds the train and test series with the weights frozen.
func embedReprSet(o ReprOptions, train, test *dataset.UCR) (*reprEmbedding, error) {
	minLen := math.MaxInt
	for _, u := range []*dataset.UCR{train, test} {
		for _, s := range u.Series {
			minLen = min(minLen, len(s))
		}
	}
	L := min(o.Length, minLen)
	if L < 3 {
		return nil, fmt.Errorf("the shortest series has %d points, too few for a window", minLen)
	}
	mcfg := o.Model
	mcfg.Length, mcfg.Stride = L, o.Stride
	mcfg.ARLags = min(mcfg.ARLags, L-2)
	// The protocol, not the model: learn from every window of the train
	// series and embed every window for pooling (a deployed learner
	// subsamples both for cost on an endless stream; a UCR set is small).
	mcfg.TrainEvery, mcfg.EmbedEvery = 1, 1
	mcfg.ImputeTrainPoints = 0 // imputation plays no part here
	nSeries := max(len(train.Series), len(test.Series))
	mcfg.MaxSeries = max(mcfg.MaxSeries, mcfg.TrainBatch, nSeries)
	ssl, err := models.NewSSL(mcfg)
	if err != nil {
		return nil, err
	}
	// Small sets get more passes: at least MinSteps optimiser steps.
	perEpoch := 0
	for _, x := range train.Series {
		if len(x) >= L {
			perEpoch += (len(x)-L)/o.Stride + 1
		}
	}
	epochs := o.Epochs
	if perEpoch > 0 {
		epochs = max(epochs, (o.MinSteps*mcfg.TrainBatch+perEpoch-1)/perEpoch)
	}
	if o.Partitions > 1 {
		return embedShared(o, train, test, mcfg, L, nSeries, epochs)
	}
	for ep := 0; ep < epochs; ep++ {
		if _, err := feedUCR(o, ssl, train, fmt.Sprintf("train%d", ep), L, nSeries); err != nil {
			return nil, err
		}
	}
	ssl.SetTraining(false)
	embTrain, err := feedUCR(o, ssl, train, "embed-train", L, nSeries)
	if err != nil {
		return nil, err
	}
	embTest, err := feedUCR(o, ssl, test, "embed-test", L, nSeries)
	if err != nil {
		return nil, err
	}
	return &reprEmbedding{
		embTrain: embTrain, embTest: embTest,
		window: L, epochs: epochs, steps: ssl.Steps(),
	}, nil
}

// feedUCR feeds every series of u, points interleaved across series (one
// point of each series per time step), one second apart, under keys of the
// given pass, and returns each series' pooled embedding (see pool).
func feedUCR(o ReprOptions, l *models.SSL, u *dataset.UCR, pass string, L, maxSeries int) ([][]float64, error) {
	wins, err := feedUCRWins(o, l, u, pass, L, maxSeries)
	if err != nil {
		return nil, err
	}
	emb := make([][]float64, len(wins))
	for i, w := range wins {
		emb[i] = pool(w, o.Pyramid)
	}
	return emb, nil
}

// feedUCRWins feeds the series as feedUCR does and returns each series'
// window embeddings in time order.
func feedUCRWins(o ReprOptions, l *models.SSL, u *dataset.UCR, pass string, L, maxSeries int) ([][][]float64, error) {
	n := len(u.Series)
	keys := make([][]byte, n)
	index := make(map[string]int, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "ucr,pass=%s,id=%d#value", pass, i)
		index[string(keys[i])] = i
	}
	D := l.Config().Dim
	wins := make([][][]float64, n) // each series' window embeddings in time order
	s := newStream(L, o.Stride, o.BatchSize, maxSeries, func(b *models.Batch, rec arrow.RecordBatch) error {
		out, err := l.Step(rec)
		if err != nil {
			return err
		}
		for r := 0; r < b.Rows; r++ {
			if !out.EmitEmbedding[r] {
				continue
			}
			i, ok := index[b.Key(r)]
			if !ok {
				return errors.New("window of an unknown series")
			}
			wins[i] = append(wins[i], slices.Clone(out.Embedding[r*D:(r+1)*D]))
		}
		return nil
	})
	defer s.close()
	longest := 0
	for _, x := range u.Series {
		longest = max(longest, len(x))
	}
	const second = int64(time.Second)
	for t := 0; t < longest; t++ {
		for i, x := range u.Series {
			if t < len(x) && !math.IsNaN(x[t]) {
				s.w.Add(keys[i], int64(t)*second, x[t])
			}
		}
		if s.err != nil {
			return nil, s.err
		}
	}
	if err := s.flush(); err != nil {
		return nil, err
	}
	for i, w := range wins {
		if len(w) == 0 {
			return nil, fmt.Errorf("series %d produced no window", i)
		}
	}
	return wins, nil
}

// pool pools a series' window embeddings (in time order) into one vector: a
// temporal pyramid of means (level k splits the windows into 2^k equal
// runs and averages each, for k < levels), then the maximum over all
// windows, concatenated. One level is plain mean and max pooling; more keep
// where in the series a pattern occurs.
func pool(wins [][]float64, levels int) []float64 {
	D := len(wins[0])
	var out []float64
	for k := 0; k < levels; k++ {
		parts := 1 << k
		for p := 0; p < parts; p++ {
			lo, hi := p*len(wins)/parts, (p+1)*len(wins)/parts
			if hi <= lo { // fewer windows than runs: take the nearest one
				lo = min(lo, len(wins)-1)
				hi = lo + 1
			}
			m := make([]float64, D)
			for _, e := range wins[lo:hi] {
				floats.Add(m, e)
			}
			floats.Scale(1/float64(hi-lo), m)
			out = append(out, m...)
		}
	}
	mx := slices.Clone(wins[0])
	for _, e := range wins[1:] {
		for j, v := range e {
			mx[j] = math.Max(mx[j], v)
		}
	}
	return append(out, mx...)
}

// reprDistance is the 1-NN distance of the repr table's first column: 1
// minus query similar's similarity, with the train series as the
// population searched (what tsrep query similar compares a series with),
// so that they set the scales, and the pooled vector's blocks then weighed
// (poolWeights).
func reprDistance(o ReprOptions, train [][]float64) func(a, b []float64) float64 {
	w := query.Scales(train)
	if w != nil {
		floats.Mul(w, poolWeights(o.Pyramid, len(train[0])/poolBlocks(o.Pyramid), o.LevelDecay, o.MaxWeight))
	}
	return func(a, b []float64) float64 { return 1 - query.ScaledCosine(a, b, w) }
}

// poolBlocks is the number of blocks of pool's vector: 2^k runs for each
// level k < levels, and the max.
func poolBlocks(levels int) int { return 1 << levels } // (2^levels − 1) + 1

// poolWeights returns the weight of each dimension of pool's vector (of
// window embeddings of d values) in the 1-NN similarity: a block of level k
// (one of 2^k runs) weighs (2^k)^-decay, the max block maxWeight. With
// decay 0 and maxWeight 1 every dimension counts alike, and then the finest
// level, with half the blocks, outweighs the rest; the CLI's defaults were
// chosen on the dev sets (README, "Why the 1-NN similarity weighs the
// pooling's blocks").
func poolWeights(levels, d int, decay, maxWeight float64) []float64 {
	w := make([]float64, 0, poolBlocks(levels)*d)
	for k := 0; k < levels; k++ {
		v := math.Pow(float64(int(1)<<k), -decay)
		for range (1 << k) * d {
			w = append(w, v)
		}
	}
	for range d {
		w = append(w, maxWeight)
	}
	return w
}

func cosineDist(a, b []float64) float64 {
	na, nb := floats.Norm(a, 2), floats.Norm(b, 2)
	if na == 0 || nb == 0 {
		return 1
	}
	return 1 - floats.Dot(a, b)/(na*nb)
}

func euclidDist(a, b []float64) float64 {
	n := min(len(a), len(b))
	return floats.Distance(a[:n], b[:n], 2)
}

// nnAccuracy classifies each test vector by the label of its nearest train
// vector (ties to the first) and returns the share classified right.
func nnAccuracy(train [][]float64, trainLab []string, test [][]float64, testLab []string, dist func(a, b []float64) float64) float64 {
	right := 0
	for i, x := range test {
		best, bd := -1, math.Inf(1)
		for j, y := range train {
			if d := dist(x, y); d < bd {
				best, bd = j, d
			}
		}
		if best >= 0 && trainLab[best] == testLab[i] {
			right++
		}
	}
	return float64(right) / float64(len(test))
}

// reprColumn is a column of figures in the repr table.
type reprColumn struct {
	short, method, kind string
}

// reprColumns are the table's columns of figures, in order; the wall
// times follow MiniRocket's.
var reprColumns = func() []reprColumn {
	cols := []reprColumn{
		{"cos", methodNNCos, "learner"},
		{"plain cos", methodNNCosPlain, "learner"},
		{"ridge", methodProbe, "learner"},
		{"logreg", methodLogReg, "learner"},
		{"svm", methodSVM, "learner"},
		{"raw ED", methodNNRaw, "baseline"},
		{"MiniRocket", methodMiniRocket, "baseline"},
	}
	for _, c := range anchorColumns {
		cols = append(cols, reprColumn{c.short, c.method, "published"})
	}
	return cols
}()

// WriteTable prints the result as an aligned table: a row per set with the
// measured figures (the learner's as mean±std over the seeds), the wall
// times and the published figures, then the means over the sets and, for
// each measured method, the number of sets where it is at or above raw
// 1-NN Euclidean.
func (r *ReprResult) WriteTable(w io.Writer) error {
	seeds := make([]string, len(r.Seeds))
	for i, s := range r.Seeds {
		seeds[i] = fmt.Sprint(s)
	}
	fmt.Fprintf(w, "repr: %d data set(s), learner seed(s) %s, MiniRocket seed %d, %.1fs\nprotocol: %s\n",
		len(r.Sets), strings.Join(seeds, ","), r.MiniRocketSeed, r.Seconds, r.Protocol)
	if len(r.Anchors) > 0 {
		fmt.Fprintf(w, "published figures: %s\n", strings.Join(r.Anchors, ", "))
	}
	fmt.Fprintln(w)
	acc := func(a float64) string { return fmt.Sprintf("%.3f", a) }
	spread := func(a, sd float64) string {
		if len(r.Seeds) < 2 {
			return acc(a)
		}
		return fmt.Sprintf("%.3f±%.3f", a, sd)
	}
	t := table{head: []string{"data set", "train/test", "length", "steps"}}
	for _, c := range reprColumns {
		t.head = append(t.head, c.short)
		if c.method == methodMiniRocket {
			t.head = append(t.head, "learner s", "MR s")
		}
	}
	// complete: the sets with a figure in every column (for a fair mean).
	var complete []int
	for si, s := range r.Sets {
		figs := map[string]ReprFigure{}
		for _, f := range s.Figures {
			figs[f.Method] = f
		}
		row := []string{s.Name, fmt.Sprintf("%d/%d", s.Train, s.Test), fmt.Sprint(s.Length), fmt.Sprint(s.Steps)}
		all := true
		for _, c := range reprColumns {
			f, ok := figs[c.method]
			switch {
			case !ok:
				row = append(row, "-")
				all = false
			case f.Seeds != nil:
				row = append(row, spread(f.Accuracy, f.Seeds.Std))
			default:
				row = append(row, acc(f.Accuracy))
			}
			if c.method == methodMiniRocket {
				row = append(row, fmt.Sprintf("%.1f", s.LearnerSeconds), num1(s.MiniRocketSeconds))
			}
		}
		if all {
			complete = append(complete, si)
		}
		t.add(row...)
	}
	means := map[string]ReprMean{}
	for _, m := range r.Means {
		means[m.Method] = m
	}
	var learnerSec, mrSec float64
	for _, s := range r.Sets {
		learnerSec += s.LearnerSeconds / float64(len(r.Sets))
		mrSec += s.MiniRocketSeconds / float64(len(r.Sets))
	}
	row := []string{fmt.Sprintf("mean (%d)", len(r.Sets)), "", "", ""}
	above := []string{"≥ raw ED", "", "", ""}
	for _, c := range reprColumns {
		m, ok := means[c.method]
		cell, up := "-", ""
		if ok {
			cell = acc(m.Accuracy)
			if m.Seeds != nil {
				cell = spread(m.Accuracy, m.Seeds.Std)
			}
			if m.Sets < len(r.Sets) {
				cell += fmt.Sprintf(" (%d)", m.Sets)
			}
			if m.AtOrAboveRaw != nil {
				up = fmt.Sprintf("%d/%d", *m.AtOrAboveRaw, m.Sets)
			}
		}
		row, above = append(row, cell), append(above, up)
		if c.method == methodMiniRocket {
			row = append(row, fmt.Sprintf("%.1f", learnerSec), num1(mrSec))
			above = append(above, "", "")
		}
	}
	t.add(row...)
	if len(complete) < len(r.Sets) && len(complete) > 0 {
		sub := make([]ReprSet, len(complete))
		for i, si := range complete {
			sub[i] = r.Sets[si]
		}
		subMeans := map[string]ReprMean{}
		for _, m := range reprMeans(sub) {
			subMeans[m.Method] = m
		}
		row := []string{fmt.Sprintf("mean (%d, all columns)", len(complete)), "", "", ""}
		for _, c := range reprColumns {
			m := subMeans[c.method]
			cell := acc(m.Accuracy)
			if m.Seeds != nil {
				cell = spread(m.Accuracy, m.Seeds.Std)
			}
			row = append(row, cell)
			if c.method == methodMiniRocket {
				row = append(row, "", "")
			}
		}
		t.add(row...)
	}
	t.add(above...)
	if err := t.write(w); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, c := range reprColumns {
		what := ""
		switch {
		case c.kind == "learner" && len(r.Seeds) > 1:
			what = " (learner: mean±std over the seeds)"
		case c.kind == "learner":
			what = " (learner)"
		case c.kind == "baseline":
			what = " (baseline, measured in this run)"
		}
		fmt.Fprintf(w, "%-10s  %s%s\n", c.short, c.method, what)
	}
	fmt.Fprintf(w, "%-10s  %s\n", "learner s", "learner's wall time per seed: training, embedding, the classifiers")
	fmt.Fprintf(w, "%-10s  %s\n", "MR s", "MiniRocket's wall time: transform, ridge classifier, prediction")
	fmt.Fprintf(w, "%-10s  %s\n", "(n)", "a mean over the n sets that have the figure")
	return nil
}

func num1(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}
