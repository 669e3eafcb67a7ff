package models

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/windowing"
)

// streamBatches windows 1000 generated series (window 64, stride 8) into
// batches of 256 windows, as the pipeline does.
func streamBatches(b *testing.B, points int) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	w := windowing.New(windowing.Config{Interval: time.Second, Length: 64, Stride: 8, MinObserved: 0.5, BatchSize: 256, MaxSeries: 2000},
		memory.NewGoAllocator(), func(r arrow.RecordBatch) { out = append(out, r) })
	key := make([][]byte, 1000)
	for s := range key {
		key[s] = []byte(fmt.Sprintf("bench,series=s%05d#value", s))
	}
	for i := 0; i < points; i++ {
		s, t := i%1000, i/1000
		w.Add(key[s], int64(t)*int64(time.Second), float64(1+s%7)*math.Sin(2*math.Pi*float64(t)/float64(24+s%50)))
	}
	w.Flush()
	return out
}

// BenchmarkPipelineStep is the pipeline's learn step per window (window
// 64, stride 8, 1000 series), by learner and model size. The names carry
// the BLAS in use (models.BLAS): run it with and without -tags openblas
// for the two side by side.
func BenchmarkPipelineStep(b *testing.B) {
	recs := streamBatches(b, 1_000_000)
	rows := 0
	for _, r := range recs {
		rows += int(r.NumRows())
	}
	run := func(b *testing.B, l Learner) {
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for i := 0; i < b.N; i++ {
			if _, err := l.Step(recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
			n += int(recs[i%len(recs)].NumRows())
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "windows/s")
		b.ReportMetric(float64(n)*8/b.Elapsed().Seconds(), "points/s")
	}
	b.Run("rls-blas="+BLAS, func(b *testing.B) {
		run(b, NewForecaster(ForecasterConfig{Name: "rls", Order: 24, Forgetting: 0.9999, MaxSeries: 2000}))
	})
	for _, hd := range [][3]int{{32, 32, 24}, {32, 64, 24}, {32, 128, 24}, {64, 256, 60}} {
		b.Run(fmt.Sprintf("ssl-dim%d-hidden%d-lags%d-blas=%s", hd[0], hd[1], hd[2], BLAS), func(b *testing.B) {
			c := DefaultSSLConfig("ssl", 64, 8)
			c.Dim, c.Hidden, c.ARLags, c.MaxSeries = hd[0], hd[1], hd[2], 2000
			l, err := NewSSL(c)
			if err != nil {
				b.Fatal(err)
			}
			run(b, l)
		})
	}
}

// BenchmarkSSLPerWindow is the ssl learner's cost per window apart from
// the encoder (training and embeddings off): the forecast experts, the
// imputation objective and the per-series bookkeeping, over 1000 series
// that have all been seen, as in a running pipeline.
func BenchmarkSSLPerWindow(b *testing.B) {
	recs := streamBatches(b, 2_000_000)
	c := DefaultSSLConfig("ssl", 64, 8)
	c.MaxSeries, c.TrainEvery, c.EmbedEvery = 2000, 1<<30, 1<<30
	l, err := NewSSL(c)
	if err != nil {
		b.Fatal(err)
	}
	warm := len(recs) / 4
	for _, r := range recs[:warm] {
		if _, err := l.Step(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		r := recs[warm+i%(len(recs)-warm)]
		if _, err := l.Step(r); err != nil {
			b.Fatal(err)
		}
		n += int(r.NumRows())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/window")
}
