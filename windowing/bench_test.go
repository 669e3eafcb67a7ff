package windowing

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// BenchmarkAdd is one point per op into 1000 series (window 64, stride 8,
// batches of 256): placing it, emitting windows and building the Arrow
// batches, in steady state.
func BenchmarkAdd(b *testing.B) {
	for _, multi := range []bool{false, true} {
		b.Run(fmt.Sprintf("multichannel=%v", multi), func(b *testing.B) {
			const series = 1000
			keys := make([][]byte, series)
			for i := range keys {
				keys[i] = []byte(fmt.Sprintf("cpu,host=h%04d#usage", i))
			}
			batches := 0
			w := New(Config{Interval: time.Second, Length: 64, Stride: 8, MinObserved: 0.5, BatchSize: 256, MaxSeries: 2 * series, Multichannel: multi},
				memory.NewGoAllocator(), func(r arrow.RecordBatch) { batches++; r.Release() })
			names := [][]byte{[]byte("usage")}
			vals := []float64{0}
			add := func(i int) {
				s, t := i%series, int64(i/series)*int64(time.Second)
				if multi {
					vals[0] = float64(i % 97)
					w.AddPoint(keys[s][:len(keys[s])-6], t, names, vals)
				} else {
					w.Add(keys[s], t, float64(i%97))
				}
			}
			for i := 0; i < 200*series; i++ { // fill the rings, grow the builders
				add(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				add(200*series + i)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
			if batches == 0 {
				b.Fatal("no batch emitted")
			}
		})
	}
}
