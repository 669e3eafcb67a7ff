package sinks

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/windowing"
)

func batchOf(t *testing.T, keys []string, n int) (arrow.RecordBatch, models.Batch) {
	t.Helper()
	var rec arrow.RecordBatch
	w := windowing.New(windowing.Config{Interval: time.Second, Length: 4, Stride: 4, MinObserved: 0.25, BatchSize: 100, MaxSeries: 10},
		memory.NewGoAllocator(), func(r arrow.RecordBatch) { rec = r })
	for i := 0; i < n; i++ {
		for _, k := range keys {
			if i == 1 {
				continue // a gap
			}
			w.Add([]byte(k), int64(i)*int64(time.Second), float64(i))
		}
	}
	w.Flush()
	b, err := models.View(rec)
	if err != nil {
		t.Fatal(err)
	}
	return rec, b
}

// TestEncodeSchema pins the line protocol of every output measurement.
func TestEncodeSchema(t *testing.T) {
	rec, b := batchOf(t, []string{`cpu,host=a,model=x#usage`}, 4)
	defer rec.Release()
	out := &models.Output{
		Rows: 1, Forecast: []float64{3.5},
		Dim: 2, Embedding: []float64{0.25, -1}, EmitEmbedding: []bool{true},
		Length: 4, Imputed: []float64{math.NaN(), 1.5, math.NaN(), math.NaN()},
		Train: []models.TrainStep{{Step: 7, Time: 3e9, Windows: 64, LossForecast: 0.5, LossImpute: math.NaN(), LossContrast: 2}},
	}
	e := NewEncoder("tsrep_", 10)
	e.Encode(&Result{Topic: "metrics", Partition: 3, Model: "ssl", Batch: &b, Out: out,
		Resolved: []models.Resolved{{Row: 0, Time: 2e9, Predicted: 2.5, Baseline: 0, Actual: 2}}})
	// Forecast lines are held back to the end of the text.
	want := `tsrep_embedding,field=usage,host=a,measurement=cpu,model=ssl,tag_model=x e0=0.25,e1=-1 3000000000
tsrep_imputed,field=usage,host=a,measurement=cpu,model=ssl,tag_model=x value=1.5 1000000000
tsrep_forecast,field=usage,host=a,measurement=cpu,model=ssl,tag_model=x actual=2 2000000000
tsrep_train,model=ssl,partition=3,topic=metrics step=7i,windows=64i,loss_forecast=0.5,loss_contrast=2 3000000000
tsrep_forecast,field=usage,host=a,measurement=cpu,model=ssl,tag_model=x predicted=3.5,last_value=3 4000000000
`
	if got := string(e.Bytes()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if e.Lines() != 5 || len(e.Errors()) != 0 {
		t.Fatalf("lines %d errors %v", e.Lines(), e.Errors())
	}
}

// TestEncodeMergesResolvedForecasts: a forecast whose slot arrives before
// the text is taken is one line with its actual value; one resolved after
// that is a line of its own at the same time, and so is one whose series
// left the tag cache in between.
func TestEncodeMergesResolvedForecasts(t *testing.T) {
	rec, b := batchOf(t, []string{`cpu,host=a#usage`, `cpu,host=b#usage`}, 4)
	defer rec.Release()
	fc := &models.Output{Rows: 2, Forecast: []float64{3.5, 7}}
	none := &models.Output{Rows: 2, Forecast: []float64{math.NaN(), math.NaN()}}
	e := NewEncoder("tsrep_", 10)
	e.Encode(&Result{Model: "ssl", Batch: &b, Out: fc})
	if e.Lines() != 2 {
		t.Fatalf("lines %d, want the 2 held forecasts", e.Lines())
	}
	// Row 0's forecast (t=4s) resolved in a later result of the same request.
	e.Encode(&Result{Model: "ssl", Batch: &b, Out: none,
		Resolved: []models.Resolved{{Row: 0, Time: 4e9, Predicted: 3.5, Baseline: 3, Actual: 4}}})
	got := string(e.Take(nil))
	want := `tsrep_forecast,field=usage,host=a,measurement=cpu,model=ssl predicted=3.5,last_value=3,actual=4 4000000000
tsrep_forecast,field=usage,host=b,measurement=cpu,model=ssl predicted=7,last_value=3 4000000000
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Row 1's resolved after the take: a line of its own.
	e.Encode(&Result{Model: "ssl", Batch: &b, Out: none,
		Resolved: []models.Resolved{{Row: 1, Time: 4e9, Predicted: 7, Baseline: 3, Actual: 4}}})
	want = "tsrep_forecast,field=usage,host=b,measurement=cpu,model=ssl actual=4 4000000000\n"
	if got := string(e.Bytes()); got != want || e.Lines() != 1 {
		t.Fatalf("lines %d, got\n%s\nwant\n%s", e.Lines(), got, want)
	}
	// A series pushed out of the tag cache between forecast and resolution.
	e = NewEncoder("tsrep_", 1)
	e.Encode(&Result{Model: "ssl", Batch: &b, Out: &models.Output{Rows: 2, Forecast: []float64{3.5, math.NaN()}}})
	e.Encode(&Result{Model: "ssl", Batch: &b, Out: none,
		Resolved: []models.Resolved{{Row: 1, Time: 4e9, Predicted: 7, Baseline: 3, Actual: 4}, {Row: 0, Time: 4e9, Predicted: 3.5, Baseline: 3, Actual: 4}}})
	if got := string(e.Bytes()); strings.Count(got, "\n") != 3 || !strings.Contains(got, "host=a,measurement=cpu,model=ssl actual=4 4000000000") {
		t.Fatalf("after eviction:\n%s", got)
	}
}

// TestEncodeReportsBadResults: a result that cannot be line protocol is
// reported, and the rest is still encoded.
func TestEncodeReportsBadResults(t *testing.T) {
	rec, b := batchOf(t, []string{"m,t=\xff#v", "m,t=ok#v"}, 4)
	defer rec.Release()
	out := &models.Output{Rows: 2, Forecast: []float64{1, 2}}
	e := NewEncoder("tsrep_", 10)
	e.Encode(&Result{Model: "m", Batch: &b, Out: out})
	if len(e.Errors()) != 1 || e.Lines() != 1 || !strings.Contains(string(e.Bytes()), "t=ok") {
		t.Fatalf("errors %v lines %d: %s", e.Errors(), e.Lines(), e.Bytes())
	}
}

func TestOutputTags(t *testing.T) {
	id, err := ingest.ParseSeriesKey(`disk,path=/,field=x#free`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range OutputTags(id, "m1") {
		got = append(got, kv.Key+"="+kv.Value)
	}
	if s := strings.Join(got, ","); s != "field=free,measurement=disk,model=m1,path=/,tag_field=x" {
		t.Fatal(s)
	}
}

// TestEmbeddingRounding: the largest component keeps EmbeddingDigits
// significant digits, the others the same absolute step, and the text is
// short; vectors that cannot be scaled are written as they are.
func TestEmbeddingRounding(t *testing.T) {
	rec, b := batchOf(t, []string{`cpu,host=a#usage`}, 4)
	defer rec.Release()
	line := func(emb ...float64) string {
		e := NewEncoder("", 10)
		e.Encode(&Result{Model: "m", Batch: &b, Out: &models.Output{Rows: 1, Forecast: []float64{math.NaN()},
			Dim: len(emb), Embedding: emb, EmitEmbedding: []bool{true}}})
		got := string(e.Bytes())
		return got[strings.IndexByte(got, ' ')+1 : strings.LastIndexByte(got, ' ')]
	}
	for _, c := range []struct {
		emb  []float64
		want string
	}{
		{[]float64{0.123456789012, -0.000123456789, 1.0 / 3}, "e0=0.1234568,e1=-0.0001235,e2=0.3333333"},
		{[]float64{-12.3456789, 2.0 / 3}, "e0=-12.34568,e1=0.66667"},
		{[]float64{0, 0}, "e0=0,e1=0"},
		{[]float64{1e-30, 1.0 / 3 * 1e-30}, "e0=1e-30,e1=3.3333333333333333e-31"}, // step 1e-36 is past the exact powers: unrounded
	} {
		if got := line(c.emb...); got != c.want {
			t.Errorf("%v: got %s, want %s", c.emb, got, c.want)
		}
	}
}

// TestEncodeChecksWhatItSkips: the per-series lines are written from heads
// the library built and checked once per series; a bad measurement prefix
// or model name is still reported, never written as broken line protocol,
// and so is a line with no value line protocol can carry.
func TestEncodeChecksWhatItSkips(t *testing.T) {
	rec, b := batchOf(t, []string{`cpu,host=a#usage`}, 4)
	defer rec.Release()
	out := &models.Output{Rows: 1, Forecast: []float64{1}, Train: []models.TrainStep{{Step: 1, Time: 1, Windows: 2}}}
	for _, c := range []struct{ prefix, model string }{{"bad\x01", "ssl"}, {"tsrep_", "bad\x01"}} {
		e := NewEncoder(c.prefix, 10)
		e.Encode(&Result{Topic: "t", Model: c.model, Batch: &b, Out: out})
		got := string(e.Bytes())
		if len(e.Errors()) == 0 || strings.Contains(got, "\x01") {
			t.Errorf("prefix %q model %q: errors %v, text %q", c.prefix, c.model, e.Errors(), got)
		}
	}
	e := NewEncoder("tsrep_", 10)
	inf := math.Inf(1)
	e.Encode(&Result{Model: "ssl", Batch: &b, Out: &models.Output{Rows: 1, Forecast: []float64{math.NaN()},
		Dim: 2, Embedding: []float64{inf, math.NaN()}, EmitEmbedding: []bool{true}}})
	e.Encode(&Result{Model: "ssl", Batch: &b, Out: &models.Output{Rows: 1, Forecast: []float64{math.NaN()},
		Dim: 2, Embedding: []float64{inf, 0.5}, EmitEmbedding: []bool{true}}})
	want := "tsrep_embedding,field=usage,host=a,measurement=cpu,model=ssl e1=0.5 3000000000\n"
	if got := string(e.Bytes()); got != want || e.Lines() != 1 || len(e.Errors()) != 1 || !errors.Is(e.Errors()[0].Err, errNoFields) {
		t.Errorf("non-finite embeddings: lines %d errors %v text %q, want %q", e.Lines(), e.Errors(), got, want)
	}
}

// TestEncodeEscapes: lines assembled from the cached measurement and tags
// parse back, with the line-protocol library's decoder, to the names and
// values they were made from, whatever characters those hold.
func TestEncodeEscapes(t *testing.T) {
	rec, b := batchOf(t, []string{`cpu\ load,host=a\ b\,c\=d,zone=é"x#usage\ idle`}, 4)
	defer rec.Release()
	e := NewEncoder(`ts rep,`, 10)
	e.Encode(&Result{Model: "m=1", Batch: &b, Out: &models.Output{Rows: 1, Forecast: []float64{2.5},
		Dim: 2, Embedding: []float64{0.5, -0.25}, EmitEmbedding: []bool{true}}})
	dec := lineprotocol.NewDecoderWithBytes(e.Bytes())
	wantTags := "field=usage idle host=a b,c=d measurement=cpu load model=m=1 zone=é\"x "
	var lines []string
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil {
			t.Fatal(err)
		}
		var tags, fields strings.Builder
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
			fmt.Fprintf(&tags, "%s=%s ", k, v)
		}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
			fmt.Fprintf(&fields, "%s=%v ", k, v)
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if tags.String() != wantTags {
			t.Errorf("%s: tags %q, want %q", m, tags.String(), wantTags)
		}
		lines = append(lines, fmt.Sprintf("%s | %s| %d", m, fields.String(), ts.UnixNano()))
	}
	want := []string{"ts rep,embedding | e0=0.5 e1=-0.25 | 3000000000", "ts rep,forecast | predicted=2.5 last_value=3 | 4000000000"}
	if !slices.Equal(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}
}
