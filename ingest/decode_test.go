package ingest

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/decode")

// msgTime is the Kafka message time of every golden case.
const msgTime = int64(1_600_000_000_000_000_000)

// recorder writes what a decoder reports, one line per event, in a form
// golden files can hold.
type recorder struct{ b strings.Builder }

func (r *recorder) Point(p *Point) {
	fmt.Fprintf(&r.b, "point %s", p.Measurement)
	for _, t := range p.Tags {
		fmt.Fprintf(&r.b, " %s=%s", t.Key, t.Value)
	}
	r.b.WriteString(" |")
	for _, f := range p.Fields {
		fmt.Fprintf(&r.b, " %s=%v", f.Key, f.Value)
	}
	fmt.Fprintf(&r.b, " | %d\n", p.Time)
}

func (r *recorder) Bad(raw []byte, reason Reason, err error) {
	fmt.Fprintf(&r.b, "bad %s %q: %v\n", reason, raw, err)
}

// TestDecodeGolden runs each case under testdata/decode: input.lp or
// input.json (one message), an optional precision file, and want.txt.
func TestDecodeGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/decode/*")
	if err != nil || len(dirs) == 0 {
		t.Fatal("no golden cases", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			prec := time.Nanosecond
			if b, err := os.ReadFile(filepath.Join(dir, "precision")); err == nil {
				prec = map[string]time.Duration{"s": time.Second, "ms": time.Millisecond, "us": time.Microsecond}[strings.TrimSpace(string(b))]
			}
			format, input := "influx", filepath.Join(dir, "input.lp")
			if _, err := os.Stat(input); err != nil {
				format, input = "json", filepath.Join(dir, "input.json")
			}
			msg, err := os.ReadFile(input)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := NewDecoder(format, Options{Precision: int64(prec)})
			if err != nil {
				t.Fatal(err)
			}
			var r recorder
			dec.Decode(msg, msgTime, &r)
			got := r.b.String()
			golden := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./ingest -run Golden -update, then review the file)", err)
			}
			if got != string(want) {
				t.Errorf("decoding %s:\n--- got\n%s--- want\n%s", input, got, want)
			}
		})
	}
}

func TestDecodeTable(t *testing.T) {
	f := func(format, msg string, o Options, want string) {
		t.Helper()
		dec, err := NewDecoder(format, o)
		if err != nil {
			t.Fatal(err)
		}
		var r recorder
		dec.Decode([]byte(msg), msgTime, &r)
		if got := strings.TrimSpace(r.b.String()); got != want {
			t.Errorf("%s %q:\ngot  %s\nwant %s", format, msg, got, want)
		}
	}
	ns := Options{Precision: 1}
	f("influx", "m v=1 100", ns, "point m | v=1 | 100")
	f("influx", "m v=1", ns, fmt.Sprintf("point m | v=1 | %d", msgTime))
	f("influx", "m v=1 -5", ns, "point m | v=1 | -5")
	f("influx", "m v=1 9223372036854775807", Options{Precision: int64(time.Second)},
		`bad bad_timestamp "m v=1 9223372036854775807": timestamp 9223372036854775807 overflows int64 nanoseconds at precision 1000000000ns`)
	f("influx", "m,t= v=1 1", ns, `bad syntax "m,t= v=1 1": at byte 4: expected tag value after tag key "t", but none found`)
	f("influx", "m v=1 "+fmt.Sprint(msgTime+int64(2*time.Hour)), Options{Precision: 1, MaxFuture: int64(time.Hour)},
		`bad timestamp_in_future "m v=1 1600007200000000000": timestamp 1600007200000000000 is more than kafka.max_future ahead of the message time 1600000000000000000`)
	f("influx", "m v=1 "+fmt.Sprint(msgTime+int64(time.Minute)), Options{Precision: 1, MaxFuture: int64(time.Hour)}, "point m | v=1 | 1600000060000000000")
	f("influx", strings.Repeat("x", 100), Options{MaxMessageBytes: 10}, `bad message_too_large "`+strings.Repeat("x", 100)+`": message of 100 bytes is larger than the limit of 10`)
	f("json", `{"measurement":"m","fields":{"v":1},"time":1}`, Options{Precision: int64(time.Millisecond)}, "point m | v=1 | 1000000")
	f("json", `{"measurement":"m","tags":{"a":"","b":"x"},"fields":{"v":1},"time":1}`, ns,
		`bad invalid_name "{\"measurement\":\"m\",\"tags\":{\"a\":\"\",\"b\":\"x\"},\"fields\":{\"v\":1},\"time\":1}": tag "a": value is empty`)
	f("json", `"just a string"`, ns, `bad wrong_type "\"just a string\"": message is a JSON string, not an object or array of objects`)
	f("json", `{"measurement":"m","fields":{"v":1}`, ns, `bad syntax "{\"measurement\":\"m\",\"fields\":{\"v\":1}": cannot parse JSON: cannot parse object: unexpected end of object; unparsed tail: ""`)
}

// TestLineProtocolRoundTrip re-encodes decoded points with the reference
// encoder and decodes them again: the points must not change.
func TestLineProtocolRoundTrip(t *testing.T) {
	in := "cpu,z=1,a=x\\ y usage=1.5,n=-3i,b=t 1700000000000000000\nm\\,1,k\\=k=v\\,v f\\ 1=2e-300 1\n"
	checkRoundTrip(t, []byte(in))
}

func checkRoundTrip(t *testing.T, msg []byte) {
	t.Helper()
	var first recorder
	NewLineProtocol(Options{}).Decode(msg, msgTime, &first)
	var enc lineprotocol.Encoder
	enc.SetLax(true)
	rt := &reencoder{enc: &enc}
	NewLineProtocol(Options{}).Decode(msg, msgTime, rt)
	var second recorder
	NewLineProtocol(Options{}).Decode(enc.Bytes(), msgTime, &second)
	points := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "point ") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	if points(first.b.String()) != points(second.b.String()) {
		t.Fatalf("round trip of %q changed the points:\n%s\nvs\n%s\n(re-encoded %q)", msg, first.b.String(), second.b.String(), enc.Bytes())
	}
}

type reencoder struct{ enc *lineprotocol.Encoder }

func (r *reencoder) Point(p *Point) {
	r.enc.StartLineRaw(p.Measurement)
	for _, t := range p.Tags {
		r.enc.AddTagRaw(t.Key, t.Value)
	}
	for _, f := range p.Fields {
		v, _ := lineprotocol.FloatValue(f.Value)
		r.enc.AddFieldRaw(f.Key, v)
	}
	r.enc.EndLine(time.Unix(0, p.Time))
}

func (r *reencoder) Bad([]byte, Reason, error) {}

// FuzzLineProtocol: the decoder never panics, every reported raw line is
// part of the message, every point is finite and survives a round trip.
func FuzzLineProtocol(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/decode/lp_*/input.lp")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Add([]byte("m v=1 1\nm v=2 2"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		dec := NewLineProtocol(Options{Precision: 1})
		c := &checker{t: t, msg: msg}
		dec.Decode(msg, msgTime, c)
		if c.points > 0 {
			checkRoundTrip(t, msg)
		}
	})
}

// FuzzJSON: the decoder never panics and every point is finite.
func FuzzJSON(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/decode/json_*/input.json")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		NewJSON(Options{Precision: 1}).Decode(msg, msgTime, &checker{t: t})
	})
}

type checker struct {
	t      *testing.T
	msg    []byte
	points int
}

func (c *checker) Point(p *Point) {
	c.points++
	if len(p.Measurement) == 0 || len(p.Fields) == 0 {
		c.t.Fatalf("point without measurement or fields: %+v", p)
	}
	for _, f := range p.Fields {
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			c.t.Fatalf("non-finite field %s", f.Key)
		}
	}
	for i := 1; i < len(p.Tags); i++ {
		if bytes.Compare(p.Tags[i-1].Key, p.Tags[i].Key) >= 0 {
			c.t.Fatalf("tags not sorted and unique: %q", p.Tags)
		}
	}
	// What InfluxDB stores, and what the sink's encoder accepts.
	if !InTimeRange(p.Time) || len(p.Tags) > DefaultMaxTags || len(p.Fields) > DefaultMaxFields {
		c.t.Fatalf("point past the limits: time %d, %d tags, %d fields", p.Time, len(p.Tags), len(p.Fields))
	}
	names := [][]byte{p.Measurement}
	for _, tg := range p.Tags {
		names = append(names, tg.Key, tg.Value)
	}
	for _, f := range p.Fields {
		names = append(names, f.Key)
	}
	for _, n := range names {
		if err := validName(n); err != nil {
			c.t.Fatalf("point with a name InfluxDB cannot store: %v", err)
		}
	}
}

func (c *checker) Bad(raw []byte, reason Reason, err error) {
	if reason == "" || err == nil {
		c.t.Fatalf("bad input without reason or error: %q", raw)
	}
	if c.msg != nil && len(raw) > 0 && !bytes.Contains(c.msg, raw) {
		c.t.Fatalf("reported line %q is not part of the message %q", raw, c.msg)
	}
}

func TestSeriesKey(t *testing.T) {
	f := func(p Point, field int, want string) {
		t.Helper()
		got := string(AppendSeriesKey(nil, &p, field))
		if got != want {
			t.Fatalf("key %q, want %q", got, want)
		}
		id, err := ParseSeriesKey(got)
		if err != nil {
			t.Fatalf("parse %q: %v", got, err)
		}
		if id.String() != got || id.Measurement != string(p.Measurement) || id.Field != string(p.Fields[field].Key) {
			t.Fatalf("parse %q = %+v", got, id)
		}
		for i, tg := range p.Tags {
			if id.Tags[i].Key != string(tg.Key) || id.Tags[i].Value != string(tg.Value) {
				t.Fatalf("parse %q: tag %d = %+v", got, i, id.Tags[i])
			}
		}
	}
	tag := func(k, v string) Tag { return Tag{[]byte(k), []byte(v)} }
	fld := func(k string) Field { return Field{Key: []byte(k)} }
	f(Point{Measurement: []byte("cpu"), Tags: []Tag{tag("host", "a")}, Fields: []Field{fld("usage")}}, 0, "cpu,host=a#usage")
	f(Point{Measurement: []byte("c p,u"), Tags: []Tag{tag("h=o st", "a,b c"), tag("z", "#")}, Fields: []Field{fld("x"), fld("u#s\\e")}}, 1,
		`c\ p\,u,h\=o\ st=a\,b\ c,z=\##u\#s\\e`)
	f(Point{Measurement: []byte("m"), Fields: []Field{fld("v")}}, 0, "m#v")
	for _, bad := range []string{"", "m", "#v", "m,k#v", "m,=v#f", "m#"} {
		if _, err := ParseSeriesKey(bad); err == nil {
			t.Errorf("ParseSeriesKey(%q) accepted a malformed key", bad)
		}
	}
}

// events decodes msg and lists what the handler saw: points in full, bad
// entries by reason.
func events(d Decoder, msg []byte) []string {
	var r recorder
	d.Decode(msg, msgTime, &r)
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(r.b.String(), "\n"), "\n") {
		if strings.HasPrefix(l, "bad ") {
			// keep "bad <reason>": error texts, and the raw text of
			// entries the reference does not delimit itself, differ
			l = strings.Join(strings.Fields(l)[:2], " ")
			// The library reports NaN and infinities as syntax errors;
			// tsrep labels them non_finite_value (TestDecodeNonFinite).
			if l == "bad "+string(ReasonNonFinite) {
				l = "bad " + string(ReasonSyntax)
			}
		}
		out = append(out, l)
	}
	return out
}

// FuzzLineProtocolMatchesReference: the zero-allocation parser accepts and
// rejects exactly what line-protocol/v2 does, with the same points.
func FuzzLineProtocolMatchesReference(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/decode/lp_*/input.lp")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	for _, s := range []string{"m v=1 1", `m\ a\,b,t\=k=v\ x f\,1=2i 3`, "m v=0x1p3", `m s="a\"b\\",v=1u`, "m,t=a\\ v=1", "m v=1 1\r\nm v=2 2\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		got := events(NewLineProtocol(Options{Precision: 1}), msg)
		want := events(newRefLineProtocol(Options{Precision: 1}), msg)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("message %q:\nparser    %q\nreference %q", msg, got, want)
		}
	})
}

// TestLineProtocolMatchesReferenceOnData: both decoders agree on the
// bundled data as line protocol.
func TestLineProtocolMatchesReferenceOnData(t *testing.T) {
	b, err := os.ReadFile("../data/ETT/ETTh1.csv")
	if err != nil {
		t.Fatal(err)
	}
	var lp strings.Builder
	for i, row := range strings.Split(string(b), "\n")[1:200] {
		c := strings.Split(row, ",")
		if len(c) < 8 {
			continue
		}
		fmt.Fprintf(&lp, "etth1,site=a\\ b,row=%d HUFL=%s,HULL=%si,OT=%s,ok=t %d\n", i, c[1], strings.Split(c[2], ".")[0], c[7], int64(i)*3600e9)
	}
	got := events(NewLineProtocol(Options{Precision: 1}), []byte(lp.String()))
	want := events(newRefLineProtocol(Options{Precision: 1}), []byte(lp.String()))
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) < 150 {
		t.Fatalf("decoders differ on ETTh1 rows: %d vs %d events", len(got), len(want))
	}
}
