package dataset

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ReadArrow reads an Arrow IPC file (or stream) holding a time column and
// numeric columns into a Frame. The time column is chosen as for CSV (by
// name, else the first timestamp-typed column); it may be a timestamp, a
// date, an integer epoch or a string.
func ReadArrow(path string, o CSVOptions) (*Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mem := memory.NewGoAllocator()
	var recs []arrow.RecordBatch
	var schema *arrow.Schema
	if fr, err := ipc.NewFileReader(f, ipc.WithAllocator(mem)); err == nil {
		defer fr.Close()
		schema = fr.Schema()
		for i := 0; i < fr.NumRecords(); i++ {
			rec, err := fr.RecordBatch(i)
			if err != nil {
				return nil, fmt.Errorf("%s: record batch %d: %w", path, i, err)
			}
			rec.Retain()
			recs = append(recs, rec)
		}
	} else {
		if _, err := f.Seek(0, 0); err != nil {
			return nil, err
		}
		sr, err := ipc.NewReader(f, ipc.WithAllocator(mem))
		if err != nil {
			return nil, fmt.Errorf("%s: neither an Arrow IPC file nor stream: %w", path, err)
		}
		defer sr.Release()
		schema = sr.Schema()
		for sr.Next() {
			rec := sr.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		if err := sr.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	fr, err := frameOf(schema, recs, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fr, nil
}

// ReadParquet reads a Parquet file (through arrow-go's pqarrow) like ReadArrow.
func ReadParquet(path string, o CSVOptions) (*Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer pf.Close()
	mem := memory.NewGoAllocator()
	r, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, mem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tbl, err := r.ReadTable(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 64<<10)
	defer tr.Release()
	var recs []arrow.RecordBatch
	for tr.Next() {
		rec := tr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	fr, err := frameOf(tbl.Schema(), recs, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fr, nil
}

// frameOf converts record batches of a time column and numeric columns.
func frameOf(schema *arrow.Schema, recs []arrow.RecordBatch, o CSVOptions) (*Frame, error) {
	tc := -1
	for i, f := range schema.Fields() {
		if o.TimeColumn != "" {
			if f.Name == o.TimeColumn {
				tc = i
			}
			continue
		}
		switch strings.ToLower(f.Name) {
		case "date", "time", "timestamp", "datetime":
			if tc < 0 {
				tc = i
			}
		}
	}
	if tc < 0 && o.TimeColumn == "" {
		for i, f := range schema.Fields() {
			if f.Type.ID() == arrow.TIMESTAMP {
				tc = i
				break
			}
		}
	}
	if tc < 0 {
		return nil, errors.New("no time column (name one, or use a column named time/timestamp/date)")
	}
	fr := &Frame{}
	var cols []int
	for i, f := range schema.Fields() {
		if i != tc && numeric(f.Type) {
			fr.Names = append(fr.Names, f.Name)
			cols = append(cols, i)
		}
	}
	if len(cols) == 0 {
		return nil, errors.New("no numeric columns")
	}
	fr.Cols = make([][]float64, len(cols))
	layout := o.TimeLayout
	for _, rec := range recs {
		tcol := rec.Column(tc)
		for r := 0; r < int(rec.NumRows()); r++ {
			if tcol.IsNull(r) {
				return nil, fmt.Errorf("row %d: null time", fr.Rows()+1)
			}
			t, err := timeAt(tcol, r, &layout)
			if err != nil {
				return nil, fmt.Errorf("row %d: %w", fr.Rows()+1, err)
			}
			fr.Time = append(fr.Time, t)
			for j, c := range cols {
				fr.Cols[j] = append(fr.Cols[j], floatAt(rec.Column(c), r))
			}
		}
	}
	if fr.Rows() == 0 {
		return nil, errors.New("no rows")
	}
	return fr, nil
}

func numeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64, arrow.BOOL:
		return true
	}
	return false
}

func floatAt(a arrow.Array, i int) float64 {
	if a.IsNull(i) {
		return math.NaN()
	}
	var v float64
	switch c := a.(type) {
	case *array.Float64:
		v = c.Value(i)
	case *array.Float32:
		v = float64(c.Value(i))
	case *array.Float16:
		v = float64(c.Value(i).Float32())
	case *array.Int64:
		v = float64(c.Value(i))
	case *array.Int32:
		v = float64(c.Value(i))
	case *array.Int16:
		v = float64(c.Value(i))
	case *array.Int8:
		v = float64(c.Value(i))
	case *array.Uint64:
		v = float64(c.Value(i))
	case *array.Uint32:
		v = float64(c.Value(i))
	case *array.Uint16:
		v = float64(c.Value(i))
	case *array.Uint8:
		v = float64(c.Value(i))
	case *array.Boolean:
		if c.Value(i) {
			v = 1
		}
	default:
		return math.NaN()
	}
	if math.IsInf(v, 0) {
		return math.NaN()
	}
	return v
}

func timeAt(a arrow.Array, i int, layout *string) (int64, error) {
	switch c := a.(type) {
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		return c.Value(i).ToTime(unit).UnixNano(), nil
	case *array.Date32:
		return c.Value(i).ToTime().UnixNano(), nil
	case *array.Date64:
		return c.Value(i).ToTime().UnixNano(), nil
	case *array.Int64:
		return ParseTime(fmt.Sprint(c.Value(i)), EpochLayout)
	case *array.String:
		s := c.Value(i)
		if *layout == "" {
			if *layout = InferLayout(s); *layout == "" {
				return 0, fmt.Errorf("cannot infer the time layout of %q", s)
			}
		}
		return ParseTime(s, *layout)
	}
	return 0, fmt.Errorf("time column of type %s is not a timestamp, date, int64 or string", a.DataType())
}
