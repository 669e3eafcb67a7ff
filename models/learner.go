// Package models holds tsrep's online learners. A Learner sees each batch of
// windows once: it first predicts every window with its current state
// (forecast, imputed gaps, embedding, losses measured on it), then learns
// from the batch. That is prequential evaluation: every number it reports
// was produced before the model saw the data it is scored on.
//
// Learners are deterministic: the same windows in the same order, with the
// same seed, give the same state bit for bit, whatever the batch boundaries.
// Gradient steps therefore run on fixed-size micro-batches of windows
// (Config.TrainBatch) carried across Arrow batches, never on the Arrow batch
// as it happens to arrive.
package models

import (
	"context"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/windowing"
)

// Learner is an online learner over window batches (see windowing.Schema).
type Learner interface {
	// Name is the value of the model tag of everything it writes.
	Name() string
	// Step predicts every window in batch with the current state, then
	// learns from the batch. The Output is owned by the learner and valid
	// until the next call.
	Step(batch arrow.RecordBatch) (*Output, error)
	// AppendState writes the full learner state for a checkpoint.
	AppendState(w *binenc.Writer)
	// LoadState restores state written by AppendState.
	LoadState(r *binenc.Reader) error
}

// ContextStepper is a Learner whose Step may wait on other partitions (a
// learner with a shared encoder waits for the group's next encoder
// version): StepContext is Step, with a context that ends the wait.
type ContextStepper interface {
	StepContext(ctx context.Context, batch arrow.RecordBatch) (*Output, error)
}

// StepContext runs l's StepContext if it has one, else its Step.
func StepContext(ctx context.Context, l Learner, batch arrow.RecordBatch) (*Output, error) {
	if cs, ok := l.(ContextStepper); ok {
		return cs.StepContext(ctx, batch)
	}
	return l.Step(batch)
}

// Shared is a Learner whose encoder is shared with the other partitions of
// its consumer group. Idle tells it that its partition has read everything
// there is and nothing new arrived for a while, so that the group need not
// wait for it (see the encoder rounds in the README).
type Shared interface {
	// Idle returns the output of what the learner caught up on first
	// (windows that waited for their encoder version; nil if none).
	Idle(ctx context.Context) (*Output, error)
}

// Polling is a Learner that may have output between batches: a shared
// encoder's version that came in lets it embed the windows that waited for
// it. Poll returns nil when there is nothing.
type Polling interface {
	Poll(ctx context.Context) (*Output, error)
	// Deferred is the number of windows still waiting.
	Deferred() int
}

// Output is what a learner produced for one batch, row-aligned with it.
type Output struct {
	Rows int
	// Forecast is the prediction of each series' next slot (window end +
	// interval), in the series' units; NaN where the learner has none.
	Forecast []float64
	// Dim is the embedding size (0: the learner makes no embeddings).
	Dim int
	// Embedding holds Rows×Dim values, row-major.
	Embedding []float64
	// EmitEmbedding says which rows' embeddings are written out.
	EmitEmbedding []bool
	// Version is, per row, the encoder version its embedding was made
	// with (learners with a shared encoder; nil otherwise).
	Version []int64
	// Length is the window length when Imputed is set.
	Length int
	// Imputed holds Rows×Length values: the filled value of each slot that
	// was not observed, NaN elsewhere. Nil if the learner does not impute.
	Imputed []float64
	// Train holds the training steps completed during this batch.
	Train []TrainStep
	// Late holds embeddings of windows of earlier batches, which waited
	// for their encoder version (a shared encoder waits for the group).
	Late []LateEmbedding
}

// LateEmbedding is the embedding of a window of an earlier batch.
type LateEmbedding struct {
	Key       string // series key
	End       int64  // window end
	Version   int64
	Embedding []float64
}

// TrainStep reports one learning step over a fixed-size micro-batch.
type TrainStep struct {
	Step    uint64 // number of the step, from 1
	Time    int64  // the latest window end in the step (Unix ns)
	Windows int    // windows in the step
	// Prequential losses of the step's windows, measured before learning
	// from them, in normalised units; NaN for objectives the learner lacks.
	LossForecast float64
	LossImpute   float64
	LossContrast float64
}

// reset sizes o for rows windows.
func (o *Output) reset(rows int) {
	o.Rows = rows
	o.Forecast = fill(o.Forecast, rows, math.NaN())
	o.Train = o.Train[:0]
	if o.Dim > 0 {
		o.Embedding = fill(o.Embedding, rows*o.Dim, 0)
		o.EmitEmbedding = fillBool(o.EmitEmbedding, rows)
	}
	if o.Length > 0 {
		o.Imputed = fill(o.Imputed, rows*o.Length, math.NaN())
	}
}

func fill(s []float64, n int, v float64) []float64 {
	if cap(s) < n {
		s = make([]float64, n)
	}
	s = s[:n]
	for i := range s {
		s[i] = v
	}
	return s
}

func fillBool(s []bool, n int) []bool {
	if cap(s) < n {
		s = make([]bool, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// Batch is a typed view of a window batch's columns.
type Batch struct {
	Rows     int
	Length   int
	keys     *array.Dictionary
	dict     *array.String
	End      []arrow.Timestamp
	Interval []arrow.Duration
	Seq      []uint64
	// Values holds Rows×Length values (NaN where not observed).
	Values   []float64
	observed *array.Boolean
	obsOff   int
}

// View returns a typed view of rec, which must have windowing.Schema.
func View(rec arrow.RecordBatch) (Batch, error) {
	var b Batch
	if rec.NumCols() != 6 {
		return b, fmt.Errorf("window batch has %d columns, want 6", rec.NumCols())
	}
	keys, ok1 := rec.Column(windowing.ColSeries).(*array.Dictionary)
	end, ok2 := rec.Column(windowing.ColEnd).(*array.Timestamp)
	ivl, ok3 := rec.Column(windowing.ColInterval).(*array.Duration)
	seq, ok4 := rec.Column(windowing.ColSeq).(*array.Uint64)
	vals, ok5 := rec.Column(windowing.ColValues).(*array.FixedSizeList)
	obs, ok6 := rec.Column(windowing.ColObserved).(*array.FixedSizeList)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return b, fmt.Errorf("window batch does not have the windowing schema: %s", rec.Schema())
	}
	b.Rows = int(rec.NumRows())
	b.Length = int(vals.DataType().(*arrow.FixedSizeListType).Len())
	b.keys = keys
	b.dict = keys.Dictionary().(*array.String)
	b.End = end.TimestampValues()
	b.Interval = ivl.DurationValues()
	b.Seq = seq.Uint64Values()
	vf := vals.ListValues().(*array.Float64)
	off := vals.Offset() * b.Length
	b.Values = vf.Float64Values()[off : off+b.Rows*b.Length]
	b.observed = obs.ListValues().(*array.Boolean)
	b.obsOff = obs.Offset() * b.Length
	return b, nil
}

// Key is row i's series key. The string aliases the batch.
func (b *Batch) Key(i int) string { return b.dict.Value(b.keys.GetValueIndex(i)) }

// Observed reports whether slot j of row i holds a point.
func (b *Batch) Observed(i, j int) bool { return b.observed.Value(b.obsOff + i*b.Length + j) }

// Row returns row i's values.
func (b *Batch) Row(i int) []float64 { return b.Values[i*b.Length : (i+1)*b.Length] }

// SlotTime is the time of slot j of row i.
func (b *Batch) SlotTime(i, j int) int64 {
	return int64(b.End[i]) - int64(b.Length-1-j)*int64(b.Interval[i])
}

// LastObserved is the newest observed value of row i (NaN if none).
func (b *Batch) LastObserved(i int) float64 {
	row := b.Row(i)
	for j := b.Length - 1; j >= 0; j-- {
		if b.Observed(i, j) {
			return row[j]
		}
	}
	return math.NaN()
}
