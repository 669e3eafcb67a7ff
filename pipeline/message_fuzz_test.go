package pipeline_test

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/sinks"
	"github.com/tsrep/tsrep/windowing"
)

// knobs is the part of the configuration FuzzMessagePath varies, each
// within its valid range, packed into a uint64 so the fuzzer mutates it.
type knobs struct {
	json         bool
	precision    int // index into precisions
	interval     int // index into intervals (0, 1: auto)
	length       int // 4..64
	stride       int // 1..length
	lateness     int // index into latenesses
	minObserved  int // 1..8 eighths
	batch        int // 1..8
	maxSeries    int // 1..8
	dropNew      bool
	multichannel bool
	maxTags      int // 1..64
	maxFields    int // 1..64
	noPrecision  bool
	maxFuture    bool
	forecaster   bool
}

var (
	precisions = []string{"ns", "us", "ms", "s"}
	intervals  = []string{"auto", "auto", "1ns", "7ns", "1ms", "1s", "1m", "1h"}
	latenesses = []time.Duration{0, 0, time.Nanosecond, 5 * time.Nanosecond, time.Second, time.Minute, time.Hour, 24 * time.Hour}
)

func unpack(u uint64) knobs {
	bits := func(shift, n uint) int { return int(u >> shift & (1<<n - 1)) }
	k := knobs{
		json:         bits(0, 1) == 1,
		precision:    bits(1, 2),
		interval:     bits(3, 3),
		length:       4 + bits(6, 6)%61,
		lateness:     bits(18, 3),
		minObserved:  1 + bits(21, 3),
		batch:        1 + bits(24, 3),
		maxSeries:    1 + bits(27, 3),
		dropNew:      bits(30, 1) == 1,
		multichannel: bits(31, 1) == 1,
		maxTags:      1 + bits(32, 6),
		maxFields:    1 + bits(38, 6),
		noPrecision:  bits(44, 1) == 1,
		maxFuture:    bits(45, 1) == 1,
		forecaster:   bits(46, 1) == 1,
	}
	k.stride = 1 + bits(12, 6)%k.length
	return k
}

func (k knobs) pack() uint64 {
	b := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	return b(k.json) | uint64(k.precision)<<1 | uint64(k.interval)<<3 | uint64(k.length-4)<<6 | uint64(k.stride-1)<<12 |
		uint64(k.lateness)<<18 | uint64(k.minObserved-1)<<21 | uint64(k.batch-1)<<24 | uint64(k.maxSeries-1)<<27 |
		b(k.dropNew)<<30 | b(k.multichannel)<<31 | uint64(k.maxTags-1)<<32 | uint64(k.maxFields-1)<<38 |
		b(k.noPrecision)<<44 | b(k.maxFuture)<<45 | b(k.forecaster)<<46
}

// defaultKnobs: line protocol in ns, interval inferred, window 8/2.
func defaultKnobs() knobs {
	return knobs{precision: 0, interval: 0, length: 8, stride: 2, minObserved: 2, batch: 4, maxSeries: 4, maxTags: 64, maxFields: 64, forecaster: true}
}

// config is the whole configuration for the knobs; false if Validate
// refuses the combination (lateness of more than 65,536 intervals).
func (k knobs) config() (config.Config, bool) {
	c := config.Default()
	c.Kafka.Format = map[bool]string{false: "influx", true: "json"}[k.json]
	c.Kafka.Precision = precisions[k.precision]
	c.Kafka.MaxTags, c.Kafka.MaxFields = k.maxTags, k.maxFields
	if k.noPrecision {
		c.Kafka.PrecisionTolerance = config.Duration{}
	}
	if k.maxFuture {
		c.Kafka.MaxFuture = config.Duration{Duration: time.Hour}
	}
	c.Window.IntervalText = intervals[k.interval]
	c.Window.Length, c.Window.Stride = k.length, k.stride
	c.Window.Lateness = config.Duration{Duration: latenesses[k.lateness]}
	c.Window.MinObserved = float64(k.minObserved) / 8
	c.Window.BatchSize, c.Window.MaxSeries = k.batch, k.maxSeries
	c.Window.SeriesPolicy = map[bool]string{false: "evict_lru", true: "drop_new"}[k.dropNew]
	c.Window.Multichannel = k.multichannel
	c.Model.Kind, c.Model.Order, c.Model.TrainBatch = "rls", 2, 2
	return c, c.Validate() == nil
}

// documented are the reasons a decoder may give.
var documented = map[ingest.Reason]bool{
	ingest.ReasonSyntax: true, ingest.ReasonEmpty: true, ingest.ReasonTooLarge: true, ingest.ReasonNoNumericField: true,
	ingest.ReasonNonFinite: true, ingest.ReasonOutOfRange: true, ingest.ReasonWrongType: true, ingest.ReasonBadTimestamp: true,
	ingest.ReasonFuture: true, ingest.ReasonPrecision: true, ingest.ReasonTooManyTags: true, ingest.ReasonTooManyFields: true,
	ingest.ReasonKeyTooLong: true, ingest.ReasonInvalidName: true,
}

// messagePath is one partition's per-message path without Kafka and
// InfluxDB: decoder → windowing → learner → prequential → encoder, with
// the checks of FuzzMessagePath after each step.
type messagePath struct {
	t       *testing.T
	cfg     config.Config
	dec     ingest.Decoder
	win     *windowing.Windower
	learner models.Learner
	preq    *models.Prequential
	enc     *sinks.Encoder
	key     []byte
	names   [][]byte
	vals    []float64
	outputs map[string]string // output tag set → input series
	lines   int
}

func newMessagePath(t *testing.T, cfg config.Config, mem memory.Allocator, forecaster bool) *messagePath {
	m := &messagePath{t: t, cfg: cfg, outputs: map[string]string{}}
	var err error
	if m.dec, err = ingest.NewDecoder(cfg.Kafka.Format, ingest.DecoderOptions(cfg.Kafka)); err != nil {
		t.Fatal(err)
	}
	m.learner = models.NewNull("null", 2)
	if forecaster {
		m.learner = models.NewForecaster(models.ForecasterConfig{Name: "rls", Order: 2, Forgetting: 0.99, MaxSeries: cfg.Window.MaxSeries, TrainBatch: 2})
	}
	m.preq = models.NewPrequential(cfg.Window.MaxSeries)
	m.enc = sinks.NewEncoder(cfg.Influx.MeasurementPrefix, cfg.Window.MaxSeries, ingest.KV{Key: "run", Value: "fuzz"})
	m.win = windowing.New(windowing.Config{
		Interval: cfg.Window.Interval.Duration, Length: cfg.Window.Length, Stride: cfg.Window.Stride,
		Lateness: cfg.Window.Lateness.Duration, MinObserved: cfg.Window.MinObserved, BatchSize: cfg.Window.BatchSize,
		MaxSeries: cfg.Window.MaxSeries, DropNew: cfg.Window.SeriesPolicy == "drop_new", Multichannel: cfg.Window.Multichannel,
	}, mem, m.emit)
	return m
}

// Point implements ingest.Handler, as the pipeline's windowing stage does.
func (m *messagePath) Point(p *ingest.Point) {
	if len(p.Tags) > m.cfg.Kafka.MaxTags || len(p.Fields) > m.cfg.Kafka.MaxFields || !ingest.InTimeRange(p.Time) {
		m.t.Fatalf("point past the caps: %d tags, %d fields, time %d", len(p.Tags), len(p.Fields), p.Time)
	}
	if m.cfg.Window.Multichannel {
		m.key = ingest.AppendSeriesPrefix(m.key[:0], p)
		m.names, m.vals = m.names[:0], m.vals[:0]
		for _, f := range p.Fields {
			m.names, m.vals = append(m.names, f.Key), append(m.vals, f.Value)
		}
		m.win.AddPoint(m.key, p.Time, m.names, m.vals)
		return
	}
	for f := range p.Fields {
		m.key = ingest.AppendSeriesKey(m.key[:0], p, f)
		if len(m.key) > ingest.MaxSeriesKeyBytes {
			m.t.Fatalf("series key of %d bytes", len(m.key))
		}
		m.win.Add(m.key, p.Time, p.Fields[f].Value)
	}
}

// Bad implements ingest.Handler.
func (m *messagePath) Bad(raw []byte, reason ingest.Reason, err error) {
	if !documented[reason] || err == nil {
		m.t.Fatalf("bad input with reason %q, error %v", reason, err)
	}
}

// emit learns from a batch and encodes its results, as the learning stage
// does, adding embeddings and filled gaps so every output kind is encoded.
func (m *messagePath) emit(rec arrow.RecordBatch) {
	defer rec.Release()
	out, err := m.learner.Step(rec)
	if err != nil {
		m.t.Fatalf("learner: %v", err)
	}
	b, err := models.View(rec)
	if err != nil {
		m.t.Fatal(err)
	}
	resolved := m.preq.Observe(&b, out)
	full := *out
	full.Dim, full.Length = 3, b.Length
	full.Embedding = make([]float64, 3*b.Rows)
	full.EmitEmbedding = make([]bool, b.Rows)
	full.Imputed = make([]float64, b.Rows*b.Length)
	for i := 0; i < b.Rows; i++ {
		full.EmitEmbedding[i] = i%2 == 0
		copy(full.Embedding[3*i:], []float64{1, -0.5, float64(i)})
		for j := 0; j < b.Length; j++ {
			full.Imputed[i*b.Length+j] = math.NaN()
			if !b.Observed(i, j) {
				full.Imputed[i*b.Length+j] = 0.5
			}
		}
		// Output series are injective.
		id, err := ingest.ParseSeriesKey(b.Key(i))
		if err != nil {
			m.t.Fatalf("window of series %q: %v", b.Key(i), err)
		}
		var ot strings.Builder
		for _, kv := range sinks.OutputTags(id, m.learner.Name(), ingest.KV{Key: "run", Value: "fuzz"}) {
			ot.WriteString(kv.Key + "\x00" + kv.Value + "\x00")
		}
		if prev, ok := m.outputs[ot.String()]; ok && prev != b.Key(i) {
			m.t.Fatalf("input series %q and %q share an output series", prev, b.Key(i))
		}
		m.outputs[ot.String()] = b.Key(i)
	}
	m.enc.Encode(&sinks.Result{Topic: "t", Partition: 0, Model: m.learner.Name(), Batch: &b, Out: &full, Resolved: resolved})
	for _, e := range m.enc.Errors() {
		// Only a series whose output key passes InfluxDB's limit (its
		// input key is within it, the tags tsrep adds are not) may fail.
		if !strings.Contains(e.Err.Error(), "longer than InfluxDB's limit") {
			m.t.Fatalf("encoding the results of decoded input failed: series %q: %v", e.Series, e.Err)
		}
	}
	m.checkLines(m.enc.Take(nil))
}

// checkLines parses the encoded text with InfluxDB's own decoder: every
// line is valid, with a timestamp in InfluxDB's range.
func (m *messagePath) checkLines(text []byte) {
	dec := lineprotocol.NewDecoderWithBytes(text)
	for dec.Next() {
		m.lines++
		if _, err := dec.Measurement(); err != nil {
			m.t.Fatalf("output line: %v\n%s", err, text)
		}
		for {
			k, _, err := dec.NextTag()
			if err != nil {
				m.t.Fatalf("output line: %v\n%s", err, text)
			}
			if k == nil {
				break
			}
		}
		for {
			k, _, err := dec.NextField()
			if err != nil {
				m.t.Fatalf("output line: %v\n%s", err, text)
			}
			if k == nil {
				break
			}
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil || ts.IsZero() || !ingest.InTimeRange(ts.UnixNano()) {
			m.t.Fatalf("output line with timestamp %v (%v)\n%s", ts, err, text)
		}
	}
}

// checkMemory: the windowing holds at most max_series series, each with at
// most Length + MaxLatenessSlots slots per channel, plus the points held
// while an interval is inferred.
func (m *messagePath) checkMemory() {
	c := m.cfg.Window
	if n := m.win.Series(); n > c.MaxSeries {
		m.t.Fatalf("%d series held, window.max_series = %d", n, c.MaxSeries)
	}
	chans := 1
	if c.Multichannel {
		chans = windowing.MaxChannels
	}
	lateSlots := windowing.MaxLatenessSlots
	if ivl := c.Interval.Duration; ivl > 0 {
		lateSlots = int((c.Lateness.Duration + ivl - 1) / ivl)
	}
	perSeries := chans*(c.Length+lateSlots) + windowing.InferPoints*windowing.MaxChannels
	if n := m.win.Slots(); n > m.win.Series()*perSeries {
		m.t.Fatalf("%d slots for %d series: more than %d a series", n, m.win.Series(), perSeries)
	}
}

// msgSep splits a fuzz input into messages.
const msgSep = "\x1e"

// FuzzMessagePath runs messages through the pipeline's per-message path
// (decoder, windowing, learner, prequential tracker, encoder) with a
// configuration drawn within its valid ranges: nothing panics, memory stays
// within what the configuration allows, every bad input has a documented
// reason, every decoded point's results encode as valid line protocol with
// timestamps InfluxDB accepts, and no two input series share an output
// series. The seeds are the inputs of issue 13's faults that a message
// can carry.
func FuzzMessagePath(f *testing.F) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano()
	k := defaultKnobs()
	seed := func(k knobs, msgTime int64, msgs ...string) {
		f.Add([]byte(strings.Join(msgs, msgSep)), k.pack(), msgTime)
	}

	// lines is n points of a series, step ns apart from t0, one message.
	lines := func(series string, n int, t0, step int64) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%s v=%d %d\n", series, i%5, t0+int64(i)*step)
		}
		return b.String()
	}
	const t2023, sec, hour = int64(1_700_000_000_000_000_000), int64(time.Second), int64(time.Hour)

	// 1. interval "auto", lateness 1h, points 1 ns apart (seconds read as
	//    ns): the ring was sized for 3.6·10¹² slots. Then a point 70 µs
	//    on: the windows of the capped ring go out.
	k1 := k
	k1.lateness, k1.noPrecision = 6, true
	seed(k1, now, lines("m,h=a", 12, 1_700_000_000, 1), "m,h=a v=1 1700070000")
	// 2. input tags named like tsrep's, and their tag_ forms.
	seed(k, now, lines("col,measurement=x", 12, t2023, sec), lines("col,tag_measurement=x", 12, t2023, sec),
		lines("col,field=f,model=m,time=t,_value=v,result=r,table=t,tag_tag_field=y", 12, t2023, sec))
	// 3. times near InfluxDB's ends (forecasts one hour after the last
	//    window must not wrap to 1677); integers at the int64/uint64 ends.
	k3 := k
	k3.interval = 7 // 1h
	seed(k3, now, lines("m", 16, ingest.MaxTime-15*hour, hour), "m v=3 9223372036854775807",
		lines("n", 12, ingest.MinTime, hour), "m v=9223372036854775807i,w=18446744073709551615u,x=9223372036854775808i 1")
	// 4. tags in descending order, past kafka.max_tags.
	var tags strings.Builder
	tags.WriteString("m")
	for i := 80; i > 0; i-- {
		fmt.Fprintf(&tags, ",k%03d=v", i)
	}
	seed(k, now, lines(tags.String(), 3, t2023, sec), lines("m,b=1,a=2", 12, t2023, sec))
	// 5. a bad message larger than a dead-letter record may be (64 KiB).
	seed(k, now, strings.Repeat("x", 70_000), lines("m", 10, t2023, sec))
	// 6-8 and 9 (readiness, offsets, checkpoint paths, URLs) are not
	//    message inputs; ordinary traffic keeps their path covered.
	seed(k, now, lines("cpu,host=a usage=1,idle=2 1\ncpu,host=b", 20, t2023, sec))
	// 10. seconds and milliseconds read as nanoseconds.
	seed(k, now, lines("m", 10, now/sec, 1), lines("m", 10, now/1e6, 1000))
	// 11. JSON names InfluxDB cannot store; line-protocol NaN and ±Inf.
	k11 := k
	k11.json = true
	seed(k11, now, `{"measurement":"m","tags":{"":"x"},"fields":{"v":1}}`, `{"measurement":"m","tags":{"h":"a\u0000b","n":"x\ny"},"fields":{"v":1}}`,
		"{\"measurement\":\"m\",\"tags\":{\"h\":\"\xff\"},\"fields\":{\"v\":1}}", `[{"measurement":"m","tags":{"h":"a"},"fields":{"v":1},"time":1764504000}]`,
		`[{"measurement":"m","tags":{"h":"a"},"fields":{"v":1},"time":1700000000000000000},{"measurement":"m","tags":{"h":"a"},"fields":{"v":2},"time":1700000001000000000},`+
			`{"measurement":"m","tags":{"h":"a"},"fields":{"v":3},"time":1700000002000000000},{"measurement":"m","tags":{"h":"a"},"fields":{"v":4},"time":1700000003000000000},`+
			`{"measurement":"m","tags":{"h":"a"},"fields":{"v":5},"time":1700000004000000000},{"measurement":"m","tags":{"h":"a"},"fields":{"v":6},"time":1700000005000000000},`+
			`{"measurement":"m","tags":{"h":"a"},"fields":{"v":7},"time":1700000006000000000},{"measurement":"m","tags":{"h":"a"},"fields":{"v":8},"time":1700000007000000000},`+
			`{"measurement":"m","tags":{"h":"a"},"fields":{"v":9},"time":1700000008000000000},{"measurement":"m","tags":{"h":"a"},"fields":{"v":0},"time":1700000009000000000}]`)
	seed(k, now, "m v=NaN 1", "m v=-Inf,w=+Inf 1", "m v=inf 1", lines("m", 10, t2023, sec))
	// Multichannel, a configured 1 ns interval, a tiny series cap.
	km := k
	km.multichannel, km.interval, km.maxSeries, km.dropNew = true, 2, 1, true
	var multi strings.Builder
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&multi, "m,h=a w=%d,v=%d %d\n", i%3, i%4, i)
	}
	seed(km, now, multi.String(), "m,h=b v=1 2", "m,h=a v=3 9223372036854775806")

	f.Fuzz(func(t *testing.T, input []byte, packed uint64, msgTime int64) {
		k := unpack(packed)
		cfg, ok := k.config()
		if !ok {
			return
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		m := newMessagePath(t, cfg, mem, k.forecaster)
		msgs := bytes.Split(input, []byte(msgSep))
		if len(msgs) > 16 {
			msgs = msgs[:16]
		}
		for i, msg := range msgs {
			m.dec.Decode(msg, msgTime+int64(i)*int64(time.Second), m)
			m.checkMemory()
		}
		m.win.Flush()
		m.checkMemory()
		t.Logf("%d messages, %d output lines, windowing %+v", len(msgs), m.lines, m.win.Stats())
		m.win.Close()
		mem.AssertSize(t, 0)
	})
}
