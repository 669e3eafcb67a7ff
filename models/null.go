package models

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tsrep/tsrep/internal/binenc"
)

// Null learns nothing: it only counts windows into training steps, so a
// pipeline with it writes just tsrep_train. It measures what decoding,
// windowing and the sink cost without a model ("learning off").
type Null struct {
	name  string
	batch int
	out   Output
	acc   stepAcc
}

// NewNull returns a Null learner reporting a step every trainBatch windows.
func NewNull(name string, trainBatch int) *Null {
	if trainBatch < 1 {
		trainBatch = 64
	}
	return &Null{name: name, batch: trainBatch}
}

// Name implements Learner.
func (n *Null) Name() string { return n.name }

// Step implements Learner.
func (n *Null) Step(rec arrow.RecordBatch) (*Output, error) {
	b, err := View(rec)
	if err != nil {
		return nil, err
	}
	n.out.reset(b.Rows)
	for i := 0; i < b.Rows; i++ {
		if st, ok := n.acc.add(int64(b.End[i]), n.batch, math.NaN(), 0, math.NaN(), 0, math.NaN()); ok {
			n.out.Train = append(n.out.Train, st)
		}
	}
	return &n.out, nil
}

const nullStateVersion = 1

// AppendState implements Learner.
func (n *Null) AppendState(w *binenc.Writer) {
	w.U32(nullStateVersion)
	n.acc.appendState(w)
}

// LoadState implements Learner.
func (n *Null) LoadState(r *binenc.Reader) error {
	if v := r.U32(); r.Err() == nil && v != nullStateVersion {
		return fmt.Errorf("null learner state version %d, this build reads %d", v, nullStateVersion)
	}
	n.acc.loadState(r)
	return r.Err()
}
