package sinks

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/windowing"
)

// BenchmarkEncode is one window's results per op (a forecast, its
// resolution, a 32-value embedding), encoded as line protocol, in batches
// of 256 windows over 1000 series.
func BenchmarkEncode(b *testing.B) {
	var rec arrow.RecordBatch
	w := windowing.New(windowing.Config{Interval: time.Second, Length: 64, Stride: 8, MinObserved: 0.5, BatchSize: 256, MaxSeries: 2000},
		memory.NewGoAllocator(), func(r arrow.RecordBatch) {
			if rec == nil {
				rec = r
			} else {
				r.Release()
			}
		})
	for i := 0; i < 100_000; i++ {
		w.Add([]byte(fmt.Sprintf("cpu,host=h%04d#usage", i%1000)), int64(i/1000)*int64(time.Second), float64(i%13))
	}
	w.Flush()
	defer rec.Release()
	bt, _ := models.View(rec)
	const D = 32
	out := &models.Output{Rows: bt.Rows, Forecast: make([]float64, bt.Rows), Dim: D,
		Embedding: make([]float64, bt.Rows*D), EmitEmbedding: make([]bool, bt.Rows)}
	res := make([]models.Resolved, bt.Rows)
	for i := range out.Forecast {
		out.Forecast[i] = math.Sqrt(float64(i))
		out.EmitEmbedding[i] = true
		res[i] = models.Resolved{Row: i, Time: int64(bt.End[i]), Predicted: 1, Baseline: 2, Actual: 1.5}
		for j := 0; j < D; j++ {
			out.Embedding[i*D+j] = float64(j) / 7
		}
	}
	e := NewEncoder("tsrep_", 2000)
	r := &Result{Topic: "t", Model: "ssl", Batch: &bt, Out: out, Resolved: res}
	e.Encode(r) // fill the tag cache
	e.Reset()
	// The resolutions are of forecasts made before this request, as in a
	// stream that is not catching up: every forecast is a line of its own.
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += bt.Rows {
		e.Encode(r)
		e.Bytes() // writes the held forecasts
		e.Reset()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "windows/s")
}
