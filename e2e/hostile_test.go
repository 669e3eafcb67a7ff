package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
)

// TestHostileInput feeds the binary every kind of bad input we know of,
// then a million-series cardinality burst: each kind is counted, dead-
// lettered with its reason where that applies, memory stays bounded, the
// process never stops, and every good point still lands.
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	ctx := testenv.Context(t, 10*time.Minute)
	b := startBroker(t, broker.Options{})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "hostile", "tsrep", db)
	c.Window.IntervalText = "1s"
	c.Window.MaxSeries = 5000
	c.Window.LatePolicy = "dead_letter"
	c.Kafka.MaxFuture = config.Duration{Duration: time.Hour}
	port, _ := testenv.FreePort()
	c.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", port)

	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	sec := int64(time.Second)
	msg := func(key, value string, ts int64) feed.Message {
		return feed.Message{Key: []byte(key), Value: []byte(value), Time: ts}
	}
	var msgs []feed.Message
	// A good series of 1000 points, with bad input between its points.
	const good = 1000
	mib := func(line string) string {
		var b strings.Builder
		for b.Len() < 1<<20 {
			b.WriteString(line)
		}
		return b.String()
	}
	bad := []struct {
		value  string
		reason ingest.Reason // "" : counted only, not dead-lettered
		ts     int64         // message time (0: the good series' current time)
	}{
		{"good,s=1 v=1 1 2 3", ingest.ReasonSyntax, 0},
		{"garbage without fields", ingest.ReasonSyntax, 0},
		{"good,s=1 v=NaN " + fmt.Sprint(t0), ingest.ReasonNonFinite, 0},
		{"nan,s=1 v=-Inf " + fmt.Sprint(t0), ingest.ReasonNonFinite, 0},
		{"big,s=1 v=1e400 " + fmt.Sprint(t0), ingest.ReasonOutOfRange, 0},
		{"big,s=1 v=99999999999999999999i " + fmt.Sprint(t0), ingest.ReasonOutOfRange, 0},
		{"", ingest.ReasonEmpty, 0},
		{" \n\t\n ", ingest.ReasonEmpty, 0},
		{`text,s=1 v="a string",w="another" ` + fmt.Sprint(t0), "", 0},
		{"fut,s=1 v=1 " + fmt.Sprint(t0+3*int64(time.Hour)), ingest.ReasonFuture, 0},
		{"past,s=1 v=1 99999999999999999999", ingest.ReasonBadTimestamp, 0},
		{mib("x"), ingest.ReasonSyntax, 0},
	}
	for i := 0; i < good; i++ {
		ts := t0 + int64(i)*sec
		msgs = append(msgs, msg("good,s=1", fmt.Sprintf("good,s=1 v=%d %d", i%17, ts), ts))
		if i%50 == 25 && i/50 < len(bad) {
			bd := bad[i/50]
			msgs = append(msgs, msg("good,s=1", bd.value, ts))
		}
		if i == 500 {
			msgs = append(msgs, msg("good,s=1", fmt.Sprintf("good,s=1 v=%d %d", i%17, ts), ts))  // a duplicate
			msgs = append(msgs, msg("good,s=1", fmt.Sprintf("good,s=1 v=1 %d", ts-100*sec), ts)) // far behind: late
		}
	}
	// A 1 MiB message of valid lines of another series.
	var lines strings.Builder
	last := t0
	for i := 0; lines.Len() < 1<<20; i++ {
		last = t0 + int64(i)*sec
		fmt.Fprintf(&lines, "mib,s=1 v=%d %d\n", i%13, last)
	}
	msgs = append(msgs, msg("mib,s=1", lines.String(), last))
	produce(ctx, t, c, msgs)

	p := startTsrep(t, nil, "run", "-c", writeConfig(t, c))
	waitCaughtUp(ctx, t, c, p, 2*time.Minute)

	// A cardinality burst: a million new series, each one point.
	burst := make([]feed.Message, 0, 1_000_000)
	for i := 0; i < 1_000_000; i++ {
		v := fmt.Sprintf("burst,id=%d v=1 %d", i, t0)
		burst = append(burst, feed.Message{Key: []byte(v[:strings.IndexByte(v, ' ')]), Value: []byte(v), Time: t0})
	}
	produce(ctx, t, c, burst)
	burst = nil
	waitCaughtUp(ctx, t, c, p, 5*time.Minute)
	peak := peakRSS(t, p.cmd.Process.Pid)
	m := func(name string) float64 { return metric(t, c.HTTP.Listen, name) }
	counts := map[string]float64{
		"syntax":         m(`tsrep_bad_input_total{reason="syntax"}`),
		"non_finite":     m(`tsrep_bad_input_total{reason="non_finite_value"}`),
		"out_of_range":   m(`tsrep_bad_input_total{reason="value_out_of_range"}`),
		"empty":          m(`tsrep_bad_input_total{reason="empty_message"}`),
		"no_numeric":     m(`tsrep_bad_input_total{reason="no_numeric_field"}`),
		"future":         m(`tsrep_bad_input_total{reason="timestamp_in_future"}`),
		"bad_timestamp":  m(`tsrep_bad_input_total{reason="bad_timestamp"}`),
		"late":           m("tsrep_late_points_total"),
		"duplicates":     m("tsrep_duplicate_points_total"),
		"evicted":        m("tsrep_series_evicted_total"),
		"dead_letters":   m("tsrep_dead_letters_total"),
		"points":         m("tsrep_points_total"),
		"fetch_errors":   m("tsrep_fetch_errors_total"),
		"learn_batches":  m("tsrep_batches_total"),
		"sink_rejected":  m("tsrep_sink_rejected_total"),
		"peak_rss_mib":   float64(peak >> 20),
		"series_current": m("tsrep_series"),
		"ckpt_age_max_s": m("tsrep_checkpoint_age_seconds") / 4,
	}
	p.stop(t)
	t.Logf("counters: %v", counts)

	want := map[string]float64{"syntax": 3, "non_finite": 2, "bad_timestamp": 1, "out_of_range": 2, "empty": 2, "no_numeric": 1, "future": 1, "late": 1, "duplicates": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s: counted %v, want %v", k, counts[k], v)
		}
	}
	if counts["evicted"] < 1_000_000-4*5000 {
		t.Errorf("series evicted: %v, want nearly a million", counts["evicted"])
	}
	if counts["series_current"] > 4*5000 {
		t.Errorf("series held: %v, past 4 partitions × window.max_series", counts["series_current"])
	}
	// The age of data read and not yet covered by a checkpoint: caught up
	// with checkpoints every 300ms, close to 0 (and 0 once idle).
	if a := counts["ckpt_age_max_s"]; a < 0 || a > 30 {
		t.Errorf("mean checkpoint age %vs with checkpoints every 300ms", a)
	}
	if peak > 1<<30 {
		t.Errorf("peak RSS %d MiB after a million-series burst with window.max_series=5000", peak>>20)
	}

	// Dead letters: every bad input with its reason, the oversized one
	// truncated; nothing for skipped input.
	dls, err := ingest.ReadDeadLetters(ctx, c.Kafka.Brokers, nil, c.Kafka.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	byReason := map[ingest.Reason]int{}
	for _, d := range dls {
		byReason[d.Reason]++
		if len(d.Value) > ingest.MaxDeadLetterValue {
			t.Errorf("dead letter of %d bytes", len(d.Value))
		}
		if d.Truncated > 0 && (d.Truncated < 1<<20 || !bytes.HasPrefix([]byte(strings.Repeat("x", 100)), d.Value[:100])) {
			t.Errorf("truncated dead letter: %d bytes of %d", len(d.Value), d.Truncated)
		}
	}
	wantDL := map[ingest.Reason]int{ingest.ReasonSyntax: 3, ingest.ReasonNonFinite: 2, ingest.ReasonBadTimestamp: 1, ingest.ReasonOutOfRange: 2, ingest.ReasonEmpty: 2, ingest.ReasonFuture: 1, ingest.ReasonLate: 1}
	for r, n := range wantDL {
		if byReason[r] != n {
			t.Errorf("dead letters for %s: %d, want %d (all: %v)", r, byReason[r], n, byReason)
		}
	}
	if len(dls) != 12 {
		t.Errorf("%d dead letters, want 12: %v", len(dls), byReason)
	}

	// Every good point landed: the good series has all its forecasts, and
	// the 1 MiB message's series too.
	cl := influxdb2.NewClient(db.URL, "")
	defer cl.Close()
	rows, err := query.New(cl.QueryAPI(""), db.Database, c.Influx.MeasurementPrefix).ForecastSummary(ctx, c.Model.Name)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[r.Series] = r.Forecasts
	}
	L, S := c.Window.Length, c.Window.Stride
	if want := int64((good-L)/S + 1); got["good,s=1#v"] != want {
		t.Errorf("good series: %d forecasts, want %d (%v)", got["good,s=1#v"], want, got)
	}
	if got["mib,s=1#v"] == 0 {
		t.Errorf("the 1 MiB message's series has no forecasts: %v", got)
	}
}
