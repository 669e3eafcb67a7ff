package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/pipeline"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/query/querytest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testConfig is a config for a test's broker, topic and database.
func testConfig(t *testing.T, brokerAddr, topic string, in testenv.Influx) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{brokerAddr}
	cfg.Kafka.Topics = []string{topic}
	cfg.Kafka.Group = "g-" + topic
	cfg.Kafka.DeadLetterTopic = topic + "-dlq"
	cfg.Influx.URL = in.URL
	cfg.Influx.Bucket = in.Database
	cfg.Pipeline.CheckpointDir = t.TempDir()
	cfg.HTTP.Listen = ""
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// malformed are messages mixed into the topic, with the reason each must be
// dead-lettered for.
var malformed = []struct {
	value  string
	reason ingest.Reason
}{
	{"etth1,source=test OT=oops 1467331200000000000", ingest.ReasonSyntax},
	{"not line protocol at all", ingest.ReasonSyntax},
	{"", ingest.ReasonEmpty},
	{"   \n  ", ingest.ReasonEmpty},
	{"etth1,source=test OT=1.5 17000000000000000000000", ingest.ReasonBadTimestamp},
	{"etth1,source=test OT=1e999 1467331200000000000", ingest.ReasonOutOfRange},
	{`{"measurement": "etth1", "fields": {"OT": 1}}`, ingest.ReasonSyntax},
}

// TestEndToEndETTh1 produces ETTh1 (7 series) with malformed messages mixed
// in to a broker over TCP, runs the pipeline into the real influxd until it
// is caught up, and checks what landed through Flux.
func TestEndToEndETTh1(t *testing.T) {
	for _, multi := range []bool{false, true} {
		t.Run(fmt.Sprintf("multichannel=%v", multi), func(t *testing.T) { endToEnd(t, multi) })
	}
}

func endToEnd(t *testing.T, multichannel bool) {
	ctx := testenv.Context(t, 5*time.Minute)
	b := testenv.StartBroker(t, broker.Options{Partitions: 4})
	in := testenv.StartInflux(t)
	topic := "ett-e2e"
	cfg := testConfig(t, b.Addr(), topic, in)
	cfg.Window.Multichannel = multichannel

	fr, err := dataset.ReadCSV(testenv.DataFile(t, "ETT/ETTh1.csv"), dataset.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := feed.CSVMessages(fr, "etth1", map[string]string{"source": "test"})
	if err != nil {
		t.Fatal(err)
	}
	// Spread the malformed messages through the stream, on the same key so
	// they share the partition with the good points.
	var msgs []feed.Message
	every := len(good) / len(malformed)
	for i, m := range good {
		if i%every == every/2 && i/every < len(malformed) {
			bad := malformed[i/every]
			msgs = append(msgs, feed.Message{Key: m.Key, Value: []byte(bad.value), Time: m.Time})
		}
		msgs = append(msgs, m)
	}
	d, _ := ingest.NewDialer(cfg.Kafka)
	if err := feed.Produce(ctx, feed.ProduceOptions{Brokers: cfg.Kafka.Brokers, Dialer: d, Topic: topic, Partitions: 4}, msgs); err != nil {
		t.Fatal(err)
	}

	if err := pipeline.RunService(ctx, cfg, pipeline.ServiceOptions{Log: testLogger(t), UntilEnd: true}); err != nil {
		t.Fatal(err)
	}

	// Forecast points per series: one per window, windows every stride
	// slots once a series has length points.
	client := influxdb2.NewClient(in.URL, "")
	defer client.Close()
	q := query.New(client.QueryAPI(""), in.Database, cfg.Influx.MeasurementPrefix)
	rows, err := q.ForecastSummary(ctx, cfg.Model.Name)
	if err != nil {
		t.Fatal(err)
	}
	n, L, S := fr.Rows(), cfg.Window.Length, cfg.Window.Stride
	wantForecasts := int64((n-L)/S + 1)
	if len(rows) != len(fr.Names) {
		t.Fatalf("%d series in InfluxDB, want %d: %+v", len(rows), len(fr.Names), rows)
	}
	var mae, base float64
	for _, r := range rows {
		if r.Forecasts != wantForecasts {
			t.Errorf("%s: %d forecasts, want %d", r.Series, r.Forecasts, wantForecasts)
		}
		// Every forecast but the last (whose step is past the data) is scored.
		if r.Scored != wantForecasts-1 {
			t.Errorf("%s: %d scored forecasts, want %d", r.Series, r.Scored, wantForecasts-1)
		}
		mae += r.MAE
		base += r.LastValueMAE
		t.Logf("%s: forecasts %d, MAE %.4f, last-value MAE %.4f", r.Series, r.Forecasts, r.MAE, r.LastValueMAE)
	}
	if !(mae < base) {
		t.Errorf("prequential MAE summed over series %.4f does not beat the last-value baseline %.4f", mae, base)
	}

	// Every scored actual is the input value at that time: good points
	// land unchanged.
	checkActuals(ctx, t, client, in.Database, cfg, fr)
	if cfg.Model.Kind == "ssl" {
		checkSimilar(ctx, t, client, in.Database, cfg, q)
	}

	// The group's committed offsets are the topic's end offsets.
	kc := ingest.NewClient(cfg.Kafka.Brokers, d)
	ends, err := ingest.EndOffsets(ctx, kc, topic)
	if err != nil {
		t.Fatal(err)
	}
	committed := committedOffsets(ctx, t, kc, cfg.Kafka.Group, topic, len(ends))
	for p, end := range ends {
		if end == 0 && committed[p] == -1 {
			continue // an empty partition has nothing to commit
		}
		if committed[p] != end {
			t.Errorf("partition %d: committed %d, end offset %d", p, committed[p], end)
		}
	}

	// The malformed messages are in the dead-letter topic with their reasons.
	dls, err := ingest.ReadDeadLetters(ctx, cfg.Kafka.Brokers, d, cfg.Kafka.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, dl := range dls {
		got = append(got, fmt.Sprintf("%s %q", dl.Reason, dl.Value))
		if dl.Topic != topic || dl.Offset < 0 || dl.Err == "" {
			t.Errorf("dead letter without its source or error: %+v", dl)
		}
	}
	for _, m := range malformed {
		v := strings.TrimSpace(m.value)
		if m.reason == ingest.ReasonEmpty {
			v = m.value
		}
		want = append(want, fmt.Sprintf("%s %q", m.reason, v))
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("dead letters:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// checkActuals compares every actual value written with the CSV.
func checkActuals(ctx context.Context, t *testing.T, client influxdb2.Client, db string, cfg config.Config, fr *dataset.Frame) {
	t.Helper()
	flux := fmt.Sprintf(`from(bucket: %q) |> range(start: 0)
  |> filter(fn: (r) => r._measurement == %q and r._field == "actual")`, db, cfg.Influx.MeasurementPrefix+"forecast")
	res, err := client.QueryAPI("").Query(ctx, flux)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	row := map[int64]int{}
	for i, ts := range fr.Time {
		row[ts] = i
	}
	col := map[string]int{}
	for i, n := range fr.Names {
		col[n] = i
	}
	n := 0
	for res.Next() {
		r := res.Record()
		f, _ := r.ValueByKey("field").(string)
		i, ok := row[r.Time().UnixNano()]
		if !ok {
			t.Fatalf("actual at %s: no such row in the CSV", r.Time())
		}
		want := fr.Cols[col[f]][i]
		if got := r.Value().(float64); got != want {
			t.Fatalf("%s at %s: actual %v, CSV has %v", f, r.Time(), got, want)
		}
		n++
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no actual values in InfluxDB")
	}
	t.Logf("%d actual values equal the CSV", n)
}

func committedOffsets(ctx context.Context, t *testing.T, kc *kafka.Client, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	resp, err := kc.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch %s/%d: %v", topic, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// checkSimilar: the ranking `tsrep query similar` gives for OT equals cosine
// similarity computed here from the latest embedding of each series, read
// with a Flux query of the test's own.
func checkSimilar(ctx context.Context, t *testing.T, client influxdb2.Client, db string, cfg config.Config, q *query.Client) {
	t.Helper()
	flux := fmt.Sprintf(`from(bucket: %q) |> range(start: 0)
  |> filter(fn: (r) => r._measurement == %q)
  |> last()`, db, cfg.Influx.MeasurementPrefix+"embedding")
	res, err := client.QueryAPI("").Query(ctx, flux)
	if err != nil {
		t.Fatal(err)
	}
	vecs := map[string][]float64{}
	for res.Next() {
		r := res.Record()
		f, _ := r.ValueByKey("field").(string)
		var j int
		if _, err := fmt.Sscanf(r.Field(), "e%d", &j); err != nil {
			continue // the version field
		}
		v := vecs[f]
		for len(v) <= j {
			v = append(v, math.NaN())
		}
		v[j] = r.Value().(float64)
		vecs[f] = v
	}
	res.Close()
	if len(vecs) != 7 || len(vecs["OT"]) != cfg.Model.Dim {
		t.Fatalf("latest embeddings: %d series, OT of dim %d", len(vecs), len(vecs["OT"]))
	}
	type m struct {
		field string
		score float64
	}
	var want []m
	var fields []string
	var others [][]float64
	for f, v := range vecs {
		if f != "OT" {
			fields = append(fields, f)
			others = append(others, v)
		}
	}
	scaled, _ := querytest.ScaledCosines(vecs["OT"], others)
	for i, f := range fields {
		want = append(want, m{f, scaled[i]})
	}
	sort.Slice(want, func(i, j int) bool { return want[i].score > want[j].score })
	got, err := q.Similar(ctx, "etth1,source=test#OT", time.Time{}, 6, cfg.Model.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("similar returned %d series", len(got))
	}
	for i, g := range got {
		if g.Series != "etth1,source=test#"+want[i].field || math.Abs(g.Score-want[i].score) > 1e-12 {
			t.Fatalf("rank %d: %s %.6f, want %s %.6f", i+1, g.Series, g.Score, want[i].field, want[i].score)
		}
	}
	t.Logf("series most similar to OT: %s %.3f, %s %.3f, %s %.3f", got[0].Series, got[0].Score, got[1].Series, got[1].Score, got[2].Series, got[2].Score)
}
