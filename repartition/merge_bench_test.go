package repartition

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/clock"
)

// BenchmarkMerge is the stage's work per point without Kafka: decode,
// re-encode as line protocol, order on event time across 4 input
// partitions and build the internal topic's records (one point per input
// message, 1000 series, round robin, as bench throughput's phase (d)
// reads them).
func BenchmarkMerge(b *testing.B) {
	cfg := config.Default()
	s := &Stage{cfg: cfg, m: NewMetrics(nil), clk: clock.Real{}, parts: 4}
	dec, _ := ingest.NewDecoder("influx", ingest.DecoderOptions(cfg.Kafka))
	m := &merger{s: s, dec: dec, parts: 4, builds: make([]recordBuild, 4)}
	m.enc.SetPrecision(lineprotocol.Nanosecond)
	for i := 0; i < 4; i++ {
		m.srcs = append(m.srcs, &source{i: i, topic: "bench", part: i, wm: math.MinInt64, msgCtr: s.m.Messages.WithLabelValues("bench")})
	}
	const series, batch = 1000, 256
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	msgs := make([][]ingest.Message, 4)
	off := make([]int64, 4)
	next := 0
	fill := func() {
		for p := range msgs {
			msgs[p] = msgs[p][:0]
		}
		for k := 0; k < 4*batch; k++ {
			i := next
			next++
			p := i % 4
			v := fmt.Appendf(nil, "bench,series=s%05d value=%g %d", i%series, float64(i%97)/7, t0+int64(i/series)*int64(time.Second))
			msgs[p] = append(msgs[p], ingest.Message{Topic: "bench", Partition: p, Offset: off[p], Value: v, Time: time.Unix(0, t0)})
			off[p]++
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	points := 0
	for points < b.N {
		b.StopTimer()
		fill()
		b.StartTimer()
		for p, src := range m.srcs {
			m.receive(src, msgs[p])
		}
		if st := m.cut(false); st != nil {
			points += st.points
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(points), "ns/point")
}
