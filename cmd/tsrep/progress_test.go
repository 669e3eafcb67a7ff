package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/pipeline"
)

// TestProgressRates: the bar's first frame (nothing read yet) and the last
// frame of a replay that ends before the first tick showed "0 msgs/hr" and
// billions of messages per second. Rates now appear once a second has
// passed, and are the count over the time since the start.
func TestProgressRates(t *testing.T) {
	var p pipeline.Progress
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	v := progressView{what: "replaying metrics", total: 17420, p: &p, t0: t0}
	var buf bytes.Buffer
	bar := v.newBar(&buf)

	frames := []struct {
		after     time.Duration
		msgs, pts int64
		done      bool
		want      string // in the label; "" for no rates
	}{
		{0, 0, 0, false, ""},
		{200 * time.Millisecond, 3000, 21000, false, ""},
		{2 * time.Second, 8000, 56000, false, "(4000 msgs/s, 28000 points/s, 2s left)"},
		{4 * time.Second, 17420, 121940, true, "(4355 msgs/s, 30485 points/s)"},
	}
	for _, f := range frames {
		p.Messages.Store(f.msgs)
		p.Points.Store(f.pts)
		now := t0.Add(f.after)
		label := v.label(now, f.done)
		if f.want == "" && label != v.what || f.want != "" && !strings.Contains(label, f.want) {
			t.Errorf("after %s: label %q, want %q", f.after, label, f.want)
		}
		v.frame(bar, now, f.done)
	}

	// A replay that ends 5 ms after it starts: no rate on any frame.
	var q pipeline.Progress
	w := progressView{what: "replaying files", total: 100, p: &q, t0: t0}
	fast := w.newBar(&buf)
	q.Messages.Store(100)
	w.frame(fast, t0.Add(5*time.Millisecond), true)
	if l := w.label(t0.Add(5*time.Millisecond), true); l != "replaying files" {
		t.Errorf("fast replay: label %q", l)
	}

	out := buf.String()
	if strings.Contains(out, "/hr") || strings.Contains(out, "/min") || strings.Contains(out, "msgs/s") && strings.Contains(out, "replaying files (") {
		t.Errorf("frames show the bar's own rates:\n%q", out)
	}
	// Every rate drawn is one of the labels above, never a wild one.
	for _, m := range regexp.MustCompile(`(\d+) (msgs|points)/s`).FindAllStringSubmatch(out, -1) {
		if n, _ := strconv.Atoi(m[1]); n > 100_000 {
			t.Errorf("frame shows %s", m[0])
		}
	}
}
