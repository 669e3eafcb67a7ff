package ingest

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
)

// decodeOne decodes msg with a fresh decoder and returns the events.
func decodeOne(t *testing.T, format string, o Options, msg string, msgTime int64) string {
	t.Helper()
	dec, err := NewDecoder(format, o)
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	dec.Decode([]byte(msg), msgTime, &r)
	return strings.TrimSpace(r.b.String())
}

// reasonOf is the reason of the only bad event of out, or "point".
func reasonOf(out string) string {
	if strings.HasPrefix(out, "point ") && !strings.Contains(out, "\n") {
		return "point"
	}
	if f := strings.Fields(out); len(f) > 1 && f[0] == "bad" && !strings.Contains(out, "\n") {
		return f[1]
	}
	return "several events: " + out
}

// TestDecodeNonFinite: NaN and infinities in line protocol are
// non_finite_value, as documented, not syntax; other unknown values stay
// syntax errors, and the line after is decoded.
func TestDecodeNonFinite(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "-Inf", "+Inf", "inf", "Infinity", "-infinity"} {
		out := decodeOne(t, "influx", Options{}, "m v=1,w="+v+" 1\nm v=2 2", msgTime)
		lines := strings.Split(out, "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "bad non_finite_value ") || !strings.Contains(lines[0], "kafka") && !strings.Contains(lines[0], "finite") || lines[1] != "point m | v=2 | 2" {
			t.Errorf("w=%s: %q", v, out)
		}
	}
	for _, v := range []string{"nope", "+5", "-nan", "Infx", "nan5"} {
		if got := reasonOf(decodeOne(t, "influx", Options{}, "m w="+v+" 1", msgTime)); got != string(ReasonSyntax) {
			t.Errorf("w=%s: %s, want syntax", v, got)
		}
	}
	if got := reasonOf(decodeOne(t, "influx", Options{}, "m w=1e999 1", msgTime)); got != string(ReasonOutOfRange) {
		t.Errorf("1e999: %s", got)
	}
}

// TestDecodeTimestampRange: timestamps outside InfluxDB's range (which is
// narrower than int64's) are bad_timestamp in both decoders; its ends are
// accepted.
func TestDecodeTimestampRange(t *testing.T) {
	off := Options{PrecisionTolerance: -1}
	for _, c := range []struct {
		ts   string
		want string
	}{
		{"9223372036854775807", "bad_timestamp"},
		{"9223372036854775806", "point"},
		{"-9223372036854775808", "bad_timestamp"},
		{"-9223372036854775807", "bad_timestamp"},
		{"-9223372036854775806", "point"},
		{"9223372036854775808", "bad_timestamp"},
	} {
		if got := reasonOf(decodeOne(t, "influx", off, "m v=1 "+c.ts, msgTime)); got != c.want {
			t.Errorf("line protocol at %s: %s, want %s", c.ts, got, c.want)
		}
		if got := reasonOf(decodeOne(t, "json", off, `{"measurement":"m","fields":{"v":1},"time":`+c.ts+`}`, msgTime)); got != c.want {
			t.Errorf("JSON at %s: %s, want %s", c.ts, got, c.want)
		}
	}
	for _, c := range []struct{ ts, want string }{
		{time.Unix(0, MaxTime).UTC().Format(time.RFC3339Nano), "point"},
		{time.Unix(0, MaxTime).Add(1).UTC().Format(time.RFC3339Nano), "bad_timestamp"},
		{time.Unix(0, MinTime).UTC().Format(time.RFC3339Nano), "point"},
		{time.Unix(0, MinTime).Add(-1).UTC().Format(time.RFC3339Nano), "bad_timestamp"},
		{"2262-04-11T00:00:00Z", "point"}, // refused by the old year check
		{"9999-01-01T00:00:00Z", "bad_timestamp"},
	} {
		if got := reasonOf(decodeOne(t, "json", off, `{"measurement":"m","fields":{"v":1},"time":"`+c.ts+`"}`, msgTime)); got != c.want {
			t.Errorf("JSON at %s: %s, want %s", c.ts, got, c.want)
		}
	}
	// Integer fields: InfluxDB's int64 and uint64 ranges, no further.
	for _, c := range []struct{ v, want string }{
		{"9223372036854775807i", "point"},
		{"9223372036854775808i", "value_out_of_range"},
		{"-9223372036854775808i", "point"},
		{"-9223372036854775809i", "value_out_of_range"},
		{"18446744073709551615u", "point"},
		{"18446744073709551616u", "value_out_of_range"},
		{"-1u", "syntax"},
	} {
		if got := reasonOf(decodeOne(t, "influx", off, "m v="+c.v+" 1", msgTime)); got != c.want {
			t.Errorf("v=%s: %s, want %s", c.v, got, c.want)
		}
	}
	// kafka.max_future with a message time far in the past does not
	// overflow into a pass.
	fut := Options{MaxFuture: int64(time.Hour), PrecisionTolerance: -1}
	if got := reasonOf(decodeOne(t, "influx", fut, "m v=1 9000000000000000000", -9000000000000000000)); got != string(ReasonFuture) {
		t.Errorf("max_future across the int64 range: %s", got)
	}
}

// TestDecodePrecision: a timestamp that only makes sense in another
// precision is dead-lettered as precision with a hint; old data that no
// other precision explains (a backfill produced today) is not.
func TestDecodePrecision(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	m := now.UnixNano()
	ns, s := Options{Precision: 1}, Options{Precision: int64(time.Second)}
	f := func(o Options, ts int64, msgTime int64, want string) {
		t.Helper()
		for _, format := range []string{"influx", "json"} {
			msg := fmt.Sprintf("m v=1 %d", ts)
			if format == "json" {
				msg = fmt.Sprintf(`{"measurement":"m","fields":{"v":1},"time":%d}`, ts)
			}
			out := decodeOne(t, format, o, msg, msgTime)
			if got := reasonOf(out); got != want {
				t.Errorf("%s %d at precision %d, message time %d: %s, want %s", format, ts, o.Precision, msgTime, out, want)
			}
			if want == string(ReasonPrecision) && !strings.Contains(out, "kafka.precision") {
				t.Errorf("precision error without a hint: %s", out)
			}
		}
	}
	f(ns, now.Unix(), m, "precision")                                         // seconds read as ns
	f(ns, now.UnixMilli(), m, "precision")                                    // milliseconds read as ns
	f(ns, now.UnixMicro(), m, "precision")                                    // microseconds read as ns
	f(s, now.UnixNano(), m, "precision")                                      // ns read as seconds: overflows, but ns explains it
	f(s, now.UnixMilli(), m, "precision")                                     // ms read as seconds
	f(s, now.Add(-15*365*24*time.Hour).Unix(), m, "point")                    // 15-year-old backfill in seconds, produced today
	f(ns, now.Add(-15*365*24*time.Hour).Unix(), m, "precision")               // the same, read as ns
	f(ns, time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), m, "point") // 36 years old: no other precision explains it
	f(ns, now.Unix(), now.Unix(), "point")                                    // message time in the same units: consistent
	f(ns, now.Unix(), 0, "point")                                             // no message time: no check
	f(ns, 100, m, "point")                                                    // tiny synthetic times: nothing explains them either
	f(Options{Precision: 1, PrecisionTolerance: -1}, now.Unix(), m, "point")
	f(Options{Precision: 1, PrecisionTolerance: int64(time.Hour)}, now.Add(-2*time.Hour).Unix(), m, "point") // seconds 2 h old: outside the tolerance in every precision
	// DecoderOptions maps the config, "0s" turning the check off.
	k := config.Default().Kafka
	if o := DecoderOptions(k); o.PrecisionTolerance != DefaultPrecisionTolerance || o.MaxTags != DefaultMaxTags || o.MaxFields != DefaultMaxFields || o.Precision != 1 {
		t.Errorf("DecoderOptions(default) = %+v", o)
	}
	k.PrecisionTolerance = config.Duration{}
	if o := DecoderOptions(k); o.PrecisionTolerance >= 0 {
		t.Errorf("kafka.precision_tolerance = 0s: %+v", o)
	}
}

// TestDecodeCaps: points over kafka.max_tags / max_fields, or with a
// series key past InfluxDB's limit, are reported with their reason; the
// next line is decoded.
func TestDecodeCaps(t *testing.T) {
	o := Options{MaxTags: 3, MaxFields: 2}
	lp := func(tags, fields int, ts int) string {
		var b strings.Builder
		b.WriteString("m")
		for i := tags; i > 0; i-- {
			fmt.Fprintf(&b, ",t%d=v", i)
		}
		b.WriteString(" ")
		for i := 0; i < fields; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "f%d=1", i)
		}
		fmt.Fprintf(&b, " %d", ts)
		return b.String()
	}
	for _, c := range []struct {
		tags, fields int
		want         string
	}{{3, 2, "point"}, {4, 1, "too_many_tags"}, {1, 3, "too_many_fields"}} {
		out := decodeOne(t, "influx", o, lp(c.tags, c.fields, 1)+"\nm v=1 2", msgTime)
		lines := strings.Split(out, "\n")
		if got := reasonOf(lines[0]); got != c.want || lines[len(lines)-1] != "point m | v=1 | 2" {
			t.Errorf("%d tags, %d fields: %q, want %s", c.tags, c.fields, out, c.want)
		}
	}
	// String fields count too.
	if got := reasonOf(decodeOne(t, "influx", o, `m a="x",b="y",c=1 1`, msgTime)); got != "too_many_fields" {
		t.Errorf("string fields past the cap: %s", got)
	}
	js := `{"measurement":"m","tags":{"a":"1","b":"2","c":"3","d":"4"},"fields":{"v":1},"time":1}`
	if got := reasonOf(decodeOne(t, "json", o, js, msgTime)); got != "too_many_tags" {
		t.Errorf("JSON with 4 tags: %s", got)
	}
	js = `{"measurement":"m","fields":{"a":1,"b":"x","c":null},"time":1}`
	if got := reasonOf(decodeOne(t, "json", o, js, msgTime)); got != "too_many_fields" {
		t.Errorf("JSON with 3 fields: %s", got)
	}
	// The series key: the escaped measurement, tags and longest field.
	long := strings.Repeat("a", MaxSeriesKeyBytes-len("m,t=#v"))
	if got := reasonOf(decodeOne(t, "influx", Options{}, "m,t="+long+" v=1 1", msgTime)); got != "point" {
		t.Errorf("key of exactly %d bytes: %s", MaxSeriesKeyBytes, got)
	}
	if got := reasonOf(decodeOne(t, "influx", Options{}, "m,t="+long+"a v=1 1", msgTime)); got != "series_key_too_long" {
		t.Errorf("key of %d bytes: %s", MaxSeriesKeyBytes+1, got)
	}
	esc := strings.Repeat(`\ `, MaxSeriesKeyBytes/2+10) // escaped in the series key too: half the limit unescaped, past it escaped
	if got := reasonOf(decodeOne(t, "influx", Options{}, "m,t=x"+esc+"x v=1 1", msgTime)); got != "series_key_too_long" {
		t.Errorf("escaped key past the limit: %s", got)
	}
	js = `{"measurement":"m","tags":{"t":"` + long + `a"},"fields":{"v":1},"time":1}`
	if got := reasonOf(decodeOne(t, "json", Options{}, js, msgTime)); got != "series_key_too_long" {
		t.Errorf("JSON key past the limit: %s", got)
	}
}

// TestDecodeJSONNames: JSON names InfluxDB cannot store are refused at
// decode time with the point's text (raw invalid UTF-8 here; the golden
// case json_invalid_names has the rest).
func TestDecodeJSONNames(t *testing.T) {
	for _, msg := range []string{
		"{\"measurement\":\"m\",\"tags\":{\"host\":\"\xff\xfe\"},\"fields\":{\"v\":1},\"time\":2}",
		"{\"measurement\":\"m\",\"tags\":{\"\xc3\":\"a\"},\"fields\":{\"v\":1},\"time\":2}",
		"{\"measurement\":\"m\xff\",\"fields\":{\"v\":1},\"time\":2}",
		"{\"measurement\":\"m\",\"fields\":{\"v\xff\":1},\"time\":2}",
	} {
		var r recorder
		NewJSON(Options{}).Decode([]byte(msg), msgTime, &r)
		if got := reasonOf(strings.TrimSpace(r.b.String())); got != string(ReasonInvalidName) {
			t.Errorf("%q: %s", msg, r.b.String())
		}
	}
}

// TestSortTagsLinearithmic: 100,000 tags in descending order (the
// insertion sort's worst case: 44 s end to end for 120,000 tags) are
// sorted in well under a second; and such a line is refused after one
// linear pass by the caps, here kafka.max_tags and then the series key
// limit (which alone bounds a point to about 16,000 tags).
func TestSortTagsLinearithmic(t *testing.T) {
	const n = 100_000
	compares := 0
	countTagCompare = func() { compares++ }
	defer func() { countTagCompare = nil }()
	b := descendingBuilder(n)
	p := b.finish([]byte("m"), 1)
	// n log2 n is 1.7 million; insertion sort's n²/2 was 5 billion.
	if limit := 4 * n * int(math.Log2(n)); compares > limit {
		t.Errorf("sorting %d descending tags took %d comparisons, more than %d: not O(n log n)", n, compares, limit)
	}
	if len(p.Tags) != n {
		t.Fatalf("%d tags", len(p.Tags))
	}
	for i := 1; i < len(p.Tags); i++ {
		if bytes.Compare(p.Tags[i-1].Key, p.Tags[i].Key) >= 0 {
			t.Fatalf("tags %d and %d out of order: %s, %s", i-1, i, p.Tags[i-1].Key, p.Tags[i].Key)
		}
	}
	// With the default cap the line is refused before any sorting.
	line := string(descendingTags(n))
	compares = 0
	if got := reasonOf(decodeOne(t, "influx", Options{}, line, msgTime)); got != string(ReasonTooManyTags) {
		t.Errorf("with the default kafka.max_tags: %s", got)
	}
	if compares != 0 {
		t.Errorf("%d tag comparisons for a point refused at kafka.max_tags", compares)
	}
	if got := reasonOf(decodeOne(t, "influx", Options{MaxTags: 1 << 17}, line, msgTime)); got != string(ReasonKeyTooLong) {
		t.Errorf("with kafka.max_tags raised: %s", got)
	}
}

// descendingBuilder is a point builder holding n tags in descending key
// order, with the caps off.
func descendingBuilder(n int) *pointBuilder {
	b := &pointBuilder{}
	b.setCaps(Options{MaxTags: n, MaxFields: 1})
	for i := n; i > 0; i-- {
		b.addTag(fmt.Appendf(nil, "k%07d", i), []byte("v"))
	}
	b.addField([]byte("v"), 1)
	return b
}

// descendingTags is one line whose n tags come in descending key order.
func descendingTags(n int) []byte {
	var b bytes.Buffer
	b.WriteString("m")
	for i := n; i > 0; i-- {
		fmt.Fprintf(&b, ",k%07d=v", i)
	}
	b.WriteString(" v=1 1")
	return b.Bytes()
}

// TestSortTagsRepeatedKeys: a repeated key keeps its last value whatever
// the order around it (the sort is not stable; ties go by input order).
func TestSortTagsRepeatedKeys(t *testing.T) {
	got := decodeOne(t, "influx", Options{}, "m,z=1,b=1,a=1,b=2,z=2,a=3,b=3 v=1 1", msgTime)
	if got != "point m a=3 b=3 z=2 | v=1 | 1" {
		t.Fatal(got)
	}
	got = decodeOne(t, "json", Options{}, `{"measurement":"m","tags":{"z":"1","b":"1","a":"1","b":"2","z":"2","a":"3","b":"3"},"fields":{"v":1},"time":1}`, msgTime)
	if got != "point m a=3 b=3 z=2 | v=1 | 1" {
		t.Fatal(got)
	}
}

// BenchmarkDecodeDescendingTags decodes one 1.2 MB line of 100,000 tags
// in descending key order per op, with the default caps: it is parsed
// once and dead-lettered as too_many_tags.
func BenchmarkDecodeDescendingTags(b *testing.B) {
	line := descendingTags(100_000)
	dec := NewLineProtocol(Options{})
	h := &discardHandler{}
	dec.Decode(line, 0, h)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dec.Decode(line, 0, h)
	}
	if h.points > 0 {
		b.Fatal("the line was not refused")
	}
}

// BenchmarkSortDescendingTags sorts 100,000 tags that arrive in
// descending key order per op (the point builder's finish, caps off).
func BenchmarkSortDescendingTags(b *testing.B) {
	src := descendingBuilder(100_000)
	offs := slices.Clone(src.tagOff)
	meas := []byte("m")
	src.finish(meas, 1) // grow the point's tag slice once
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(src.tagOff, offs)
		src.finish(meas, 1)
	}
}
