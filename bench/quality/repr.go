package quality

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"gonum.org/v1/gonum/floats"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/models"
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
	// MinSteps raises the number of passes over a small train set until
	// the learner has taken at least this many optimiser steps.
	MinSteps int
}

// ReprSet is the outcome on one data set.
type ReprSet struct {
	Name    string   `json:"name"`
	Train   int      `json:"train_series"`
	Test    int      `json:"test_series"`
	Classes int      `json:"classes"`
	Window  int      `json:"window"`
	Epochs  int      `json:"epochs"`
	Steps   uint64   `json:"train_steps"`
	Figures []Figure `json:"figures"` // MSE holds the accuracy
	Seconds float64  `json:"seconds"`
}

// ReprResult is the outcome of RunRepr.
type ReprResult struct {
	Sets []ReprSet `json:"sets"`
	// Mean is the mean accuracy of each method over the sets.
	Mean     map[string]float64 `json:"mean_accuracy"`
	Seconds  float64            `json:"seconds"`
	Protocol string             `json:"protocol"`
}

// Published TS2Vec accuracies (Yue et al., AAAI 2022, UCR table); a range
// where the paper's tables differ.
var publishedTS2Vec = map[string]string{
	"gunpoint": "0.980", "ecg200": "0.920", "italypowerdemand": "0.925-0.961",
	"arrowhead": "0.817-0.857", "coffee": "1.000",
}

// Method names of the repr table.
const (
	methodNNCos  = "1-NN cosine on pooled embeddings"
	methodProbe  = "linear probe (ridge, LOO-CV) on pooled embeddings"
	methodLogReg = "linear probe (logistic, 5-fold CV) on pooled embeddings"
	methodNNRaw  = "1-NN Euclidean on raw series"
	methodTS2Vec = "TS2Vec (published)"
)

// RunRepr learns from each set's train series without labels (Epochs
// passes, the series' points interleaved so that a micro-batch mixes
// series), then, with the weights frozen, embeds every train and test
// series: the embeddings of its windows pooled over the series (see pool).
// The test series are classified by 1-NN (cosine) and by two linear probes
// fitted on the train embeddings (a ridge classifier and a multinomial
// logistic regression); the baseline is 1-NN Euclidean on the raw series.
func RunRepr(o ReprOptions, sets []UCRSet) (*ReprResult, error) {
	t0 := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Pyramid < 1 {
		o.Pyramid = 1
	}
	if o.Length < 3 || o.Stride < 1 {
		return nil, fmt.Errorf("window length %d must be at least 3 and stride %d at least 1", o.Length, o.Stride)
	}
	res := &ReprResult{
		Mean: map[string]float64{},
		Protocol: "unsupervised training on the train series; frozen embeddings pooled per series; " +
			"test accuracy of 1-NN (cosine) and of linear probes (ridge, logistic) fitted on the train embeddings",
	}
	for _, set := range sets {
		rs, err := runReprSet(o, set)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", set.Name, err)
		}
		res.Sets = append(res.Sets, *rs)
		for _, f := range rs.Figures {
			if f.Kind != "published" {
				res.Mean[f.Method] += f.MSE / float64(len(sets))
			}
		}
		o.logf("repr: %s done, %.0fs", set.Name, time.Since(t0).Seconds())
	}
	res.Seconds = since(t0)
	return res, nil
}

func runReprSet(o ReprOptions, set UCRSet) (*ReprSet, error) {
	t0 := time.Now()
	e, err := embedReprSet(o, set)
	if err != nil {
		return nil, err
	}
	train, test := e.train, e.test
	classes := map[string]bool{}
	for _, l := range train.Labels {
		classes[l] = true
	}
	rs := &ReprSet{
		Name: set.Name, Train: len(train.Series), Test: len(test.Series), Classes: len(classes),
		Window: e.window, Epochs: e.epochs, Steps: e.steps,
	}
	accNN := nnAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels, cosineDist)
	accProbe := ridgeAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels)
	accLogReg := logregAccuracy(e.embTrain, train.Labels, e.embTest, test.Labels)
	accRaw := nnAccuracy(train.Series, train.Labels, test.Series, test.Labels, euclidDist)
	rs.Figures = []Figure{
		{Method: methodNNCos, Kind: "learner", MSE: accNN, N: len(test.Series)},
		{Method: methodProbe, Kind: "learner", MSE: accProbe, N: len(test.Series)},
		{Method: methodLogReg, Kind: "learner", MSE: accLogReg, N: len(test.Series)},
		{Method: methodNNRaw, Kind: "baseline", MSE: accRaw, N: len(test.Series)},
	}
	if p, ok := publishedTS2Vec[strings.ToLower(set.Name)]; ok {
		rs.Figures = append(rs.Figures, Figure{Method: methodTS2Vec, Kind: "published", Note: p})
	}
	rs.Seconds = since(t0)
	return rs, nil
}

// reprEmbedding is a set's series and their pooled embeddings.
type reprEmbedding struct {
	train, test       *dataset.UCR
	embTrain, embTest [][]float64
	window, epochs    int
	steps             uint64
}

// embedReprSet learns from the set's train series without labels, then
// embeds the train and test series with the weights frozen.
func embedReprSet(o ReprOptions, set UCRSet) (*reprEmbedding, error) {
	train, err := dataset.ReadUCR(set.Train)
	if err != nil {
		return nil, err
	}
	test, err := dataset.ReadUCR(set.Test)
	if err != nil {
		return nil, err
	}
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
		train: train, test: test, embTrain: embTrain, embTest: embTest,
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

// WriteTable prints the result as an aligned table.
func (r *ReprResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "repr: %d data set(s), %.1fs\nprotocol: %s\n\n", len(r.Sets), r.Seconds, r.Protocol)
	t := table{head: []string{"data set", "train/test", "window", "steps", "method", "kind", "accuracy"}}
	for _, s := range r.Sets {
		for _, f := range s.Figures {
			a := fmt.Sprintf("%.3f", f.MSE)
			if f.Kind == "published" {
				a = f.Note
			}
			t.add(s.Name, fmt.Sprintf("%d/%d", s.Train, s.Test), fmt.Sprint(s.Window), fmt.Sprint(s.Steps), f.Method, f.Kind, a)
		}
	}
	var methods []string
	for m := range r.Mean {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	for _, m := range methods {
		t.add("mean", "", "", "", m, "", fmt.Sprintf("%.3f", r.Mean[m]))
	}
	return t.write(w)
}
