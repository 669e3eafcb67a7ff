package sinks

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/windowing"
)

// tagKeys are the names the property tests draw tag keys from: the tags
// tsrep adds, names InfluxDB and Flux keep, their tag_-prefixed forms (as
// many times as the rule could stack), and ordinary names.
var tagKeys = []string{
	"measurement", "field", "model", "run", "time", "result", "table", "_value", "_field", "_measurement", "_x",
	"tag_measurement", "tag_field", "tag_model", "tag_run", "tag_time", "tag_result", "tag__value", "tag_",
	"tag_tag_measurement", "tag_tag_field", "tag_tag_tag_model", "tag_host", "tag_tag_host",
	"host", "region", "tag", "tags", "tag_x_y", "Measurement", "m",
}

func randomSeries(r *rand.Rand) ingest.SeriesID {
	id := ingest.SeriesID{
		Measurement: []string{"cpu", "tag_cpu", "measurement", "mem"}[r.IntN(4)],
		Field:       []string{"usage", "field", "tag_field", "v"}[r.IntN(4)],
	}
	seen := map[string]bool{}
	for n := r.IntN(5); len(id.Tags) < n; {
		k := tagKeys[r.IntN(len(tagKeys))]
		if seen[k] {
			continue
		}
		seen[k] = true
		id.Tags = append(id.Tags, ingest.KV{Key: k, Value: []string{"x", "y", "measurement", "tag_x"}[r.IntN(4)]})
	}
	slices.SortFunc(id.Tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
	return id
}

// outputKey is an output series as InfluxDB identifies it: the sorted tag
// set (the measurement is the same for every series of one output).
func outputKey(id ingest.SeriesID, model string, extra []ingest.KV) string {
	var b strings.Builder
	for _, t := range OutputTags(id, model, extra...) {
		b.WriteString(t.Key + "\x00" + t.Value + "\x00")
	}
	return b.String()
}

// TestOutputSeriesInjective is the property behind "no two input series
// map to one output series": over random series whose tag keys are drawn
// from the names that could collide (the tags tsrep adds, InfluxDB's and
// Flux's own, tag_-prefixed forms), distinct input series always get
// distinct output tag sets, with and without a replay's extra run tag;
// the output tag keys are unique, none is a name InfluxDB refuses or Flux
// shadows; and the input series is recovered from the output tags with
// InputTagKey, as the query side does. Today's rule (only measurement,
// field and model renamed) fails it: cpu,measurement=x and
// cpu,tag_measurement=x were one output series.
func TestOutputSeriesInjective(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, extra := range [][]ingest.KV{nil, {{Key: "run", Value: "backfill"}}} {
		byOutput := map[string]string{}
		for i := 0; i < 200_000; i++ {
			id := randomSeries(r)
			in := id.String()
			out := outputKey(id, "ssl", extra)
			if prev, ok := byOutput[out]; ok && prev != in {
				t.Fatalf("extra %v: input series %s and %s map to one output series %q", extra, prev, in, out)
			}
			byOutput[out] = in

			tags := OutputTags(id, "ssl", extra...)
			back := ingest.SeriesID{}
			for j, tg := range tags {
				if j > 0 && tags[j-1].Key >= tg.Key {
					t.Fatalf("output tags of %s not sorted and unique: %v", in, tags)
				}
				switch {
				case tg.Key == "time", tg.Key == "result", tg.Key == "table", strings.HasPrefix(tg.Key, "_"):
					t.Fatalf("output tag %q of %s: InfluxDB refuses it or Flux shadows it", tg.Key, in)
				case tg.Key == "measurement":
					back.Measurement = tg.Value
					continue
				case tg.Key == "field":
					back.Field = tg.Value
					continue
				}
				k, ok := InputTagKey(tg.Key, extra...)
				if !ok {
					continue // model, run: tsrep's
				}
				back.Tags = append(back.Tags, ingest.KV{Key: k, Value: tg.Value})
				if OutputTagKey(k, extra...) != tg.Key {
					t.Fatalf("InputTagKey(%q) = %q, whose output key is %q", tg.Key, k, OutputTagKey(k, extra...))
				}
			}
			slices.SortFunc(back.Tags, func(a, b ingest.KV) int { return strings.Compare(a.Key, b.Key) })
			if back.String() != in {
				t.Fatalf("extra %v: %s came back as %s from %v", extra, in, back.String(), tags)
			}
		}
		if len(byOutput) < 10_000 {
			t.Fatalf("only %d distinct series drawn", len(byOutput))
		}
	}
	// The case of the issue, through the encoder: two output series.
	e := NewEncoder("tsrep_", 10)
	var heads []string
	for _, key := range []string{"col,measurement=x#v", "col,tag_measurement=x#v"} {
		s, err := e.seriesOf(key, "ssl")
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, string(s.tags))
	}
	if heads[0] == heads[1] {
		t.Fatalf("both series write %q", heads[0])
	}
	if want := []string{",field=v,measurement=col,model=ssl,tag_measurement=x ", ",field=v,measurement=col,model=ssl,tag_tag_measurement=x "}; !slices.Equal(heads, want) {
		t.Fatalf("tags %q, want %q", heads, want)
	}
	// Keys no input tag is written under are not taken for input tags.
	for _, k := range []string{"tag_host", "model", "_value", "table"} {
		if got, ok := InputTagKey(k); ok {
			t.Errorf("InputTagKey(%q) = %q, true", k, got)
		}
	}
}

// windowBatch is a batch of one window of a series ending at end with the
// given interval, built directly (the windowing refuses to emit such
// windows now).
func windowBatch(t *testing.T, key string, end, interval int64, length int) (arrow.RecordBatch, models.Batch) {
	t.Helper()
	rb := array.NewRecordBuilder(memory.NewGoAllocator(), windowing.Schema(length))
	defer rb.Release()
	_ = rb.Field(windowing.ColSeries).(*array.BinaryDictionaryBuilder).AppendString(key)
	rb.Field(windowing.ColEnd).(*array.TimestampBuilder).Append(arrow.Timestamp(end))
	rb.Field(windowing.ColInterval).(*array.DurationBuilder).Append(arrow.Duration(interval))
	rb.Field(windowing.ColSeq).(*array.Uint64Builder).Append(0)
	vals := rb.Field(windowing.ColValues).(*array.FixedSizeListBuilder)
	obs := rb.Field(windowing.ColObserved).(*array.FixedSizeListBuilder)
	vals.Append(true)
	obs.Append(true)
	for j := 0; j < length; j++ {
		vals.ValueBuilder().(*array.Float64Builder).Append(float64(j))
		obs.ValueBuilder().(*array.BooleanBuilder).Append(j != 1)
	}
	rec := rb.NewRecordBatch()
	b, err := models.View(rec)
	if err != nil {
		t.Fatal(err)
	}
	return rec, b
}

// TestEncodeTimeRange: a window whose forecast (end + interval) or first
// slot would fall outside InfluxDB's range is reported, and nothing of it
// is written; today the forecast of a window ending near the largest
// timestamp overflowed to the year 1677. Windows up to the ends of the
// range are written, and so are train steps, unless outside it.
func TestEncodeTimeRange(t *testing.T) {
	hour := int64(time.Hour)
	for _, c := range []struct {
		name          string
		end, interval int64
		ok            bool
	}{
		{"forecast past the largest time", ingest.MaxTime - hour/2, hour, false},
		{"forecast overflowing int64", math.MaxInt64 - 10, hour, false},
		{"forecast at the largest time", ingest.MaxTime - hour, hour, true},
		{"first slot before the smallest time", ingest.MinTime + 2*hour, hour, false},
		{"first slot at the smallest time", ingest.MinTime + 3*hour, hour, true},
		{"end before the smallest time", math.MinInt64, hour, false},
		{"huge interval", 0, math.MaxInt64 / 2, false},
		{"ordinary", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), hour, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec, b := windowBatch(t, "cpu,host=a#v", c.end, c.interval, 4)
			defer rec.Release()
			out := &models.Output{Rows: 1, Forecast: []float64{1.5}, Dim: 2, Embedding: []float64{1, 2}, EmitEmbedding: []bool{true},
				Length: 4, Imputed: []float64{math.NaN(), 7, math.NaN(), math.NaN()}}
			e := NewEncoder("tsrep_", 10)
			e.Encode(&Result{Model: "ssl", Batch: &b, Out: out,
				Resolved: []models.Resolved{{Row: 0, Time: c.end + c.interval, Actual: 1}}})
			text := string(e.Bytes())
			if !c.ok {
				if len(e.Errors()) != 1 || text != "" || !strings.Contains(e.Errors()[0].Err.Error(), "InfluxDB's range") {
					t.Fatalf("errors %v, text:\n%s", e.Errors(), text)
				}
				return
			}
			if len(e.Errors()) != 0 || strings.Count(text, "\n") != 3 {
				t.Fatalf("errors %v, text:\n%s", e.Errors(), text)
			}
			for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
				f := strings.Fields(l)
				if ts := f[len(f)-1]; strings.HasPrefix(ts, "-") != (c.end < 0) {
					t.Fatalf("line %q: timestamp on the wrong side of 1970", l)
				}
			}
		})
	}
	// Train steps outside the range are reported; the others written.
	rec, b := windowBatch(t, "cpu,host=a#v", 4e9, 1e9, 4)
	defer rec.Release()
	e := NewEncoder("tsrep_", 10)
	e.Encode(&Result{Topic: "t", Model: "ssl", Batch: &b, Out: &models.Output{Rows: 1, Forecast: []float64{math.NaN()},
		Train: []models.TrainStep{{Step: 1, Time: math.MaxInt64}, {Step: 2, Time: 5e9}}}})
	if text := string(e.Bytes()); len(e.Errors()) != 1 || strings.Count(text, "\n") != 1 || !strings.Contains(text, "step=2i") {
		t.Fatalf("errors %v, text:\n%s", e.Errors(), text)
	}
}
