package ingest

import (
	"fmt"
	"testing"
)

// discardHandler counts points and fields.
type discardHandler struct{ points, fields, bad int }

func (h *discardHandler) Point(p *Point)            { h.points++; h.fields += len(p.Fields) }
func (h *discardHandler) Bad([]byte, Reason, error) { h.bad++ }

// telegrafLines are one-point messages shaped like Telegraf's cpu metrics.
func telegrafLines(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("cpu,cpu=cpu%d,host=web-%02d,region=eu-west-1 usage_user=%d.25,usage_system=%d.5,usage_idle=%d.125,usage_iowait=0.5,usage_irq=0i %d",
			i%4, i%16, i%97, i%13, 90+i%7, 1700000000000000000+int64(i)*1e9))
	}
	return out
}

func benchDecode(b *testing.B, d Decoder, msgs [][]byte) {
	h := &discardHandler{}
	for _, m := range msgs { // warm the buffers
		d.Decode(m, 0, h)
	}
	*h = discardHandler{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Decode(msgs[i%len(msgs)], 0, h)
	}
	b.StopTimer()
	if h.bad > 0 || h.points != b.N {
		b.Fatalf("%d bad, %d points of %d", h.bad, h.points, b.N)
	}
	b.ReportMetric(float64(h.fields)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkDecodeLineProtocol is one point (5 fields) per op.
func BenchmarkDecodeLineProtocol(b *testing.B) {
	b.Run("tsrep", func(b *testing.B) { benchDecode(b, NewLineProtocol(Options{}), telegrafLines(1024)) })
	b.Run("line-protocol-v2", func(b *testing.B) { benchDecode(b, newRefLineProtocol(Options{}), telegrafLines(1024)) })
}

// BenchmarkDecodeJSON is one point (5 fields) per op.
func BenchmarkDecodeJSON(b *testing.B) {
	msgs := make([][]byte, 1024)
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf(`{"measurement":"cpu","tags":{"cpu":"cpu%d","host":"web-%02d","region":"eu-west-1"},"fields":{"usage_user":%d.25,"usage_system":%d.5,"usage_idle":%d.125,"usage_iowait":0.5,"usage_irq":0},"time":%d}`,
			i%4, i%16, i%97, i%13, 90+i%7, 1700000000000000000+int64(i)*1e9))
	}
	benchDecode(b, NewJSON(Options{}), msgs)
}

// BenchmarkSeriesKey is one key per op.
func BenchmarkSeriesKey(b *testing.B) {
	var h keyHandler
	NewLineProtocol(Options{}).Decode(telegrafLines(1)[0], 0, &h)
	var dst []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst = AppendSeriesKey(dst[:0], &h.p, i%len(h.p.Fields))
	}
}

type keyHandler struct{ p Point }

func (k *keyHandler) Point(p *Point) {
	k.p = Point{Measurement: append([]byte(nil), p.Measurement...), Time: p.Time}
	for _, t := range p.Tags {
		k.p.Tags = append(k.p.Tags, Tag{append([]byte(nil), t.Key...), append([]byte(nil), t.Value...)})
	}
	for _, f := range p.Fields {
		k.p.Fields = append(k.p.Fields, Field{append([]byte(nil), f.Key...), f.Value})
	}
}
func (k *keyHandler) Bad([]byte, Reason, error) {}
