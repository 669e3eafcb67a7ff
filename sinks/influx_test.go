package sinks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/sinks"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newInflux(t *testing.T, batch int) (*sinks.Influx, testenv.Influx) {
	t.Helper()
	in := testenv.StartInflux(t)
	s, err := sinks.NewInflux(testenv.Context(t, time.Minute), sinks.InfluxConfig{
		URL: in.URL, Bucket: in.Database, CreateBucket: true, BatchPoints: batch, Gzip: true,
		Timeout: 10 * time.Second, RetryMaxInterval: time.Second,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, in
}

func count(ctx context.Context, t *testing.T, url, db string) map[int64]float64 {
	t.Helper()
	c := influxdb2.NewClient(url, "")
	defer c.Close()
	res, err := c.QueryAPI("").Query(ctx, `from(bucket: "`+db+`") |> range(start: 0) |> filter(fn: (r) => r._measurement == "m")`)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	out := map[int64]float64{}
	for res.Next() {
		if v, ok := res.Record().Value().(float64); ok {
			out[res.Record().Time().UnixNano()] = v
		}
	}
	return out
}

// TestInfluxIsolatesRejectedLines: a line InfluxDB refuses (a field type
// conflict) is split out of its batch and reported; its neighbours land.
func TestInfluxIsolatesRejectedLines(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	s, in := newInflux(t, 3)
	if rj, err := s.Write(ctx, []byte("m v=1 1\nm v=2 2\n")); err != nil || len(rj) != 0 {
		t.Fatalf("rejected %v, err %v", rj, err)
	}
	rj, err := s.Write(ctx, []byte("m v=3 3\nm v=\"text\" 4\nm v=5 5\nm v=6 6\nm v=7i 7\nm v=8 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rj {
		lines = append(lines, string(r.Line))
		if r.Err == nil {
			t.Fatal("rejection without a reason")
		}
	}
	if len(lines) != 2 || lines[0] != `m v="text" 4` || lines[1] != "m v=7i 7" {
		t.Fatalf("rejected %q", lines)
	}
	got := count(ctx, t, in.URL, in.Database)
	for _, ts := range []int64{1, 2, 3, 5, 6, 8} {
		if got[ts] != float64(ts) {
			t.Errorf("point at %d: %v", ts, got[ts])
		}
	}
	if len(got) != 6 {
		t.Errorf("%d points, want 6: %v", len(got), got)
	}
}

// TestInfluxWriteIsIdempotent: writing the same lines twice leaves the same
// points.
func TestInfluxWriteIsIdempotent(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	s, in := newInflux(t, 1000)
	for i := 0; i < 2; i++ {
		if _, err := s.Write(ctx, []byte("m,k=a v=1 10\nm,k=a v=2 20\n")); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(ctx, t, in.URL, in.Database); len(got) != 2 {
		t.Fatalf("%d points after writing 2 twice", len(got))
	}
}

// TestInfluxConcurrentWrites: partitions write at once (run with -race).
func TestInfluxConcurrentWrites(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	s, in := newInflux(t, 7)
	done := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func() {
			var b []byte
			for i := 0; i < 50; i++ {
				b = append(b, fmt.Sprintf("m,w=%d v=%d %d\n", w, i, i+1)...)
			}
			_, err := s.Write(ctx, b)
			done <- err
		}()
	}
	for w := 0; w < 4; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	c := influxdb2.NewClient(in.URL, "")
	defer c.Close()
	res, err := c.QueryAPI("").Query(ctx, `from(bucket: "`+in.Database+`") |> range(start: 0) |> filter(fn: (r) => r._measurement == "m") |> group() |> count()`)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if !res.Next() || res.Record().Value().(int64) != 200 {
		t.Fatalf("points after concurrent writes: %v", res.Record())
	}
}

// TestInfluxDropBucket: the database and what was written are gone after
// DropBucket.
func TestInfluxDropBucket(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	s, in := newInflux(t, 100)
	if _, err := s.Write(ctx, []byte("m v=1 1\nm v=2 2\n")); err != nil {
		t.Fatal(err)
	}
	if got := count(ctx, t, in.URL, in.Database); len(got) != 2 {
		t.Fatalf("before the drop: %v", got)
	}
	if err := s.DropBucket(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(in.URL + "/query?q=SHOW+DATABASES")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(b), in.Database) {
		t.Fatalf("after the drop, SHOW DATABASES: %s %s", resp.Status, b)
	}
}
