package windowing

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Column positions of a window batch.
const (
	ColSeries   = iota // dictionary<int32, utf8>: the series key
	ColEnd             // timestamp[ns]: the time of the window's last slot
	ColInterval        // duration[ns]: the series' sampling interval
	ColSeq             // uint64: the window's number within its series, from 0
	ColValues          // fixed_size_list<float64>[length]: NaN where not observed
	ColObserved        // fixed_size_list<bool>[length]: the observed mask
)

// Schema returns the Arrow schema of window batches of the given length.
func Schema(length int) *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "series", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
		{Name: "end", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: "interval", Type: arrow.FixedWidthTypes.Duration_ns},
		{Name: "seq", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "values", Type: arrow.FixedSizeListOfNonNullable(int32(length), arrow.PrimitiveTypes.Float64)},
		{Name: "observed", Type: arrow.FixedSizeListOfNonNullable(int32(length), arrow.FixedWidthTypes.Boolean)},
	}, nil)
}

// batchBuilder appends windows to reused Arrow builders.
type batchBuilder struct {
	rb     *array.RecordBuilder
	series *array.BinaryDictionaryBuilder
	end    *array.TimestampBuilder
	ivl    *array.DurationBuilder
	seq    *array.Uint64Builder
	vals   *array.FixedSizeListBuilder
	valsF  *array.Float64Builder
	obs    *array.FixedSizeListBuilder
	obsB   *array.BooleanBuilder
	n      int
	cap    int
	length int
}

func newBatchBuilder(mem memory.Allocator, length, capacity int) *batchBuilder {
	rb := array.NewRecordBuilder(mem, Schema(length))
	b := &batchBuilder{
		rb:     rb,
		series: rb.Field(ColSeries).(*array.BinaryDictionaryBuilder),
		end:    rb.Field(ColEnd).(*array.TimestampBuilder),
		ivl:    rb.Field(ColInterval).(*array.DurationBuilder),
		seq:    rb.Field(ColSeq).(*array.Uint64Builder),
		vals:   rb.Field(ColValues).(*array.FixedSizeListBuilder),
		obs:    rb.Field(ColObserved).(*array.FixedSizeListBuilder),
		cap:    capacity,
		length: length,
	}
	b.valsF = b.vals.ValueBuilder().(*array.Float64Builder)
	b.obsB = b.obs.ValueBuilder().(*array.BooleanBuilder)
	b.reserve()
	return b
}

func (b *batchBuilder) reserve() {
	b.rb.Reserve(b.cap)
	b.valsF.Reserve(b.cap * b.length)
	b.obsB.Reserve(b.cap * b.length)
}

// appendWindow appends one window. vals and obs are given as up to two
// segments each (a ring buffer's two halves).
func (b *batchBuilder) appendWindow(key []byte, end, interval int64, seq uint64, v1, v2 []float64, o1, o2 []bool) {
	_ = b.series.Append(key)
	b.end.Append(arrow.Timestamp(end))
	b.ivl.Append(arrow.Duration(interval))
	b.seq.Append(seq)
	b.vals.Append(true)
	b.valsF.AppendValues(v1, nil)
	b.valsF.AppendValues(v2, nil)
	b.obs.Append(true)
	b.obsB.AppendValues(o1, nil)
	b.obsB.AppendValues(o2, nil)
	b.n++
}

// build returns the batch and resets the builders, dictionary included, so
// each batch's dictionary holds only its own series.
func (b *batchBuilder) build() arrow.RecordBatch {
	rec := b.rb.NewRecordBatch()
	b.series.ResetFull()
	b.n = 0
	b.reserve()
	return rec
}

func (b *batchBuilder) release() { b.rb.Release() }
