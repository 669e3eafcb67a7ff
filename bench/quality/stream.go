// Package quality measures what tsrep's learners learn, on public data sets
// and by the published protocols: forecasting (the FSNet online protocol),
// imputation (the TimesNet protocol) and representations (UCR
// classification from frozen embeddings). Every measurement runs the
// pipeline's own path: points go through a windowing.Windower into Arrow
// batches, a models.Learner steps through them, and forecasts are resolved
// by models.Prequential. Baselines run in the same pass on the same windows.
package quality

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/windowing"
)

// Common options of the three measurements.
type Common struct {
	// Model is the SSL learner's configuration; Length and Stride are set
	// by each measurement.
	Model models.SSLConfig
	// Epochs is the number of passes over the training rows (or series).
	Epochs int
	// BatchSize is the number of windows per Arrow batch.
	BatchSize int
	// Log receives progress lines (nil: none).
	Log io.Writer
}

func (c *Common) logf(format string, a ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", a...)
	}
}

func (c *Common) check() error {
	if c.Epochs < 1 {
		return fmt.Errorf("epochs %d must be at least 1", c.Epochs)
	}
	if c.BatchSize < 1 {
		return fmt.Errorf("batch size %d must be at least 1", c.BatchSize)
	}
	return nil
}

// ParseRows reads a split size: a row count ("2880") or, below 1, a share
// of the file's rows ("0.2").
func ParseRows(s string, total int) (int, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("split size %q is neither a row count nor a fraction", s)
	}
	if v < 1 && v > 0 {
		return int(math.Round(v * float64(total))), nil
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("split size %q: a row count must be whole", s)
	}
	return int(v), nil
}

// Split is the train, validation and test row ranges of a file.
type Split struct {
	Train, Val, Test int
}

// ParseSplit reads the three split sizes against a file of total rows.
func ParseSplit(train, val, test string, total int) (Split, error) {
	var sp Split
	var err error
	for _, f := range []struct {
		s string
		p *int
	}{{train, &sp.Train}, {val, &sp.Val}, {test, &sp.Test}} {
		if *f.p, err = ParseRows(f.s, total); err != nil {
			return sp, err
		}
	}
	if sp.Train < 1 || sp.Test < 1 {
		return sp, errors.New("the train and test splits must hold at least one row")
	}
	if n := sp.Train + sp.Val + sp.Test; n > total {
		return sp, fmt.Errorf("train+val+test = %d rows, the file has %d", n, total)
	}
	return sp, nil
}

// zscore normalises every column of fr in place by the mean and standard
// deviation of rows [0, n), and drops columns without a finite value there.
func zscore(fr *dataset.Frame, n int) {
	var names []string
	var cols [][]float64
	for c, col := range fr.Cols {
		var sum, sq float64
		k := 0
		for _, v := range col[:n] {
			if !math.IsNaN(v) {
				sum += v
				k++
			}
		}
		if k == 0 {
			continue
		}
		m := sum / float64(k)
		for _, v := range col[:n] {
			if !math.IsNaN(v) {
				sq += (v - m) * (v - m)
			}
		}
		sd := math.Sqrt(sq / float64(k))
		if !(sd > 0) {
			sd = 1
		}
		for i, v := range col {
			col[i] = (v - m) / sd
		}
		names = append(names, fr.Names[c])
		cols = append(cols, col)
	}
	fr.Names, fr.Cols = names, cols
}

// csvRun is what the forecasting and imputation measurements share: the
// file's first Train+Val+Test rows, z-scored by the training rows, and a
// learner for windows of length points at stride 1.
type csvRun struct {
	fr        *dataset.Frame
	sp        Split
	end       int // Train+Val+Test
	ssl       *models.SSL
	maxSeries int // the columns under every pass's keys
	length    int
}

func (c *Common) openCSV(path string, o dataset.CSVOptions, train, val, test string, length int) (*csvRun, error) {
	fr, err := dataset.ReadCSV(path, o)
	if err != nil {
		return nil, err
	}
	sp, err := ParseSplit(train, val, test, fr.Rows())
	if err != nil {
		return nil, err
	}
	end := sp.Train + sp.Val + sp.Test
	fr = fr.Slice(0, end)
	zscore(fr, sp.Train)
	if len(fr.Cols) == 0 {
		return nil, fmt.Errorf("%s: no numeric column", path)
	}
	mcfg := c.Model
	mcfg.Length, mcfg.Stride = length, 1
	mcfg.ARLags = min(mcfg.ARLags, length-2)
	mcfg.MaxSeries = max(mcfg.MaxSeries, mcfg.TrainBatch, 2*len(fr.Cols))
	ssl, err := models.NewSSL(mcfg)
	if err != nil {
		return nil, err
	}
	return &csvRun{fr: fr, sp: sp, end: end, ssl: ssl, maxSeries: len(fr.Cols) * (c.Epochs + 1), length: length}, nil
}

// warmUp runs the Epochs-1 warm-up passes over the training rows, each
// under its own series keys.
func (c *Common) warmUp(what string, r *csvRun) error {
	for ep := 1; ep < c.Epochs; ep++ {
		s := newRowStream(c.Model.Multichannel, r.length, 1, c.BatchSize, r.maxSeries, func(_ *models.Batch, rec arrow.RecordBatch) error {
			_, err := r.ssl.Step(rec)
			return err
		})
		err := s.rows(r.fr, keys(r.fr.Names, fmt.Sprintf("warmup%d", ep)), 0, r.sp.Train, nil)
		if err == nil {
			err = s.flush()
		}
		s.close()
		if err != nil {
			return err
		}
		c.logf("%s: warm-up pass %d/%d done, %d steps", what, ep, c.Epochs-1, r.ssl.Steps())
	}
	return nil
}

// Stream windows points and hands each batch to a function, which must not
// keep it: the pipeline's path from points to a learner, shared by the
// benches (bench/nab uses it too). The first error the function returns
// stops the stream.
type Stream struct {
	w   *windowing.Windower
	err error
	// multi feeds rows as multichannel points (windowing's multichannel
	// mode): the columns of a row are the fields of one point.
	multi bool
	names [][]byte
	vals  []float64
}

// stream is the quality benches' name for it.
type stream = Stream

func newStream(length, stride, batch, maxSeries int, fn func(b *models.Batch, rec arrow.RecordBatch) error) *stream {
	return NewStream(windowing.Config{
		Length: length, Stride: stride, MinObserved: 1e-9, BatchSize: batch, MaxSeries: maxSeries,
	}, fn)
}

// newRowStream is newStream for the file benches: in multichannel mode
// (the learner's) a file's columns are the fields of one point per row,
// windowed together, as `tsrep produce` sends them and the pipeline
// windows them.
func newRowStream(multi bool, length, stride, batch, maxSeries int, fn func(b *models.Batch, rec arrow.RecordBatch) error) *stream {
	s := NewStream(windowing.Config{
		Length: length, Stride: stride, MinObserved: 1e-9, BatchSize: batch, MaxSeries: maxSeries, Multichannel: multi,
	}, fn)
	s.multi = multi
	return s
}

// NewStream returns a Stream over a windowing.Windower with cfg that
// hands each batch, viewed, to fn.
func NewStream(cfg windowing.Config, fn func(b *models.Batch, rec arrow.RecordBatch) error) *Stream {
	s := &Stream{}
	s.w = windowing.New(cfg, memory.DefaultAllocator, func(rec arrow.RecordBatch) {
		defer rec.Release()
		if s.err != nil {
			return
		}
		b, err := models.View(rec)
		if err == nil {
			err = fn(&b, rec)
		}
		s.err = err
	})
	return s
}

// keys builds the series key of each column: measurement bench, tag pass,
// field the column's name.
func keys(names []string, pass string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = []byte("bench,pass=" + pass + "#" + escapeField(n))
	}
	return out
}

func escapeField(s string) string {
	return strings.NewReplacer(`\`, `\\`, "#", `\#`).Replace(s)
}

// rows feeds rows [from, to) of fr, each row's columns at the row's time;
// skip, if not nil, leaves points out. NaN cells are gaps.
func (s *stream) rows(fr *dataset.Frame, k [][]byte, from, to int, skip func(row, col int) bool) error {
	if s.multi {
		prefix := k[0][:bytes.LastIndexByte(k[0], '#')]
		for i := from; i < to && s.err == nil; i++ {
			s.names, s.vals = s.names[:0], s.vals[:0]
			for c, col := range fr.Cols {
				v := col[i]
				if math.IsNaN(v) || (skip != nil && skip(i, c)) {
					continue
				}
				s.names = append(s.names, []byte(fr.Names[c]))
				s.vals = append(s.vals, v)
			}
			if len(s.vals) > 0 {
				s.w.AddPoint(prefix, fr.Time[i], s.names, s.vals)
			}
		}
		return s.err
	}
	for i := from; i < to && s.err == nil; i++ {
		for c, col := range fr.Cols {
			v := col[i]
			if math.IsNaN(v) || (skip != nil && skip(i, c)) {
				continue
			}
			s.w.Add(k[c], fr.Time[i], v)
		}
	}
	return s.err
}

// Add places one point of series key (t in Unix ns) and returns the first
// error of the batch function so far.
func (s *Stream) Add(key []byte, t int64, v float64) error {
	if s.err == nil {
		s.w.Add(key, t, v)
	}
	return s.err
}

// Flush emits the unfinished batch and returns the first error.
func (s *Stream) Flush() error {
	s.w.Flush()
	return s.err
}

// Close releases the windower; Flush first.
func (s *Stream) Close() { s.w.Close() }

func (s *stream) flush() error { return s.Flush() }

func (s *stream) close() { s.Close() }

// acc accumulates squared and absolute errors.
type acc struct {
	se, ae float64
	n      int
}

func (a *acc) add(pred, actual float64) {
	d := pred - actual
	a.se += d * d
	a.ae += math.Abs(d)
	a.n++
}

func (a *acc) mse() float64 { return a.se / float64(a.n) }
func (a *acc) mae() float64 { return a.ae / float64(a.n) }

// Figure is one method's score.
type Figure struct {
	Method string  `json:"method"`
	Kind   string  `json:"kind"` // "learner", "baseline" or "published"
	MSE    float64 `json:"mse,omitempty"`
	MAE    float64 `json:"mae,omitempty"`
	N      int     `json:"n,omitempty"` // points scored
	Note   string  `json:"note,omitempty"`
	// Seeds is, for a learner run at several seeds, the MSE at each.
	Seeds *MSESpread `json:"over_seeds,omitempty"`
}

// MSESpread is an MSE at each seed, in seed order, and its range and
// sample standard deviation.
type MSESpread struct {
	PerSeed []float64 `json:"mse_per_seed"`
	Min     float64   `json:"mse_min"`
	Max     float64   `json:"mse_max"`
	Std     float64   `json:"mse_std"`
}

func fig(method, kind string, a acc) Figure {
	return Figure{Method: method, Kind: kind, MSE: a.mse(), MAE: a.mae(), N: a.n}
}

func since(t time.Time) float64 { return math.Round(time.Since(t).Seconds()*10) / 10 }
