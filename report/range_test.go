package report

import (
	"testing"
	"time"

	"github.com/tsrep/tsrep/query"
)

// TestRangeOf: by default the last Days days of the series' data (its
// newest point included), or of --to; a given --from wins; Days 0 is
// everything.
func TestRangeOf(t *testing.T) {
	d := func(s string) time.Time { x, _ := time.Parse(time.RFC3339, s); return x }
	end := d("2018-06-26T07:00:00Z")
	for _, c := range []struct {
		o        Options
		end      time.Time
		from, to time.Time
	}{
		{Options{Days: 7}, end, end.Add(time.Nanosecond - 7*24*time.Hour), time.Time{}},
		{Options{Days: 0.5}, end, end.Add(time.Nanosecond - 12*time.Hour), time.Time{}},
		{Options{Days: 7, To: d("2017-01-08T00:00:00Z")}, end, d("2017-01-01T00:00:00Z"), d("2017-01-08T00:00:00Z")},
		{Options{Days: 7, From: d("2016-01-01T00:00:00Z")}, end, d("2016-01-01T00:00:00Z"), time.Time{}},
		{Options{Days: 0}, end, time.Time{}, time.Time{}},
		{Options{Days: 7}, time.Time{}, time.Time{}, time.Time{}}, // no data
	} {
		from, to := c.o.rangeOf(c.end)
		if !from.Equal(c.from) || !to.Equal(c.to) {
			t.Errorf("%+v end %v: [%v, %v), want [%v, %v)", c.o, c.end, from, to, c.from, c.to)
		}
	}
	if got := rangeText(d("2018-06-19T07:00:00Z"), time.Time{}); got != "since 2018-06-19 07:00" {
		t.Error(got)
	}
	if got := rangeText(d("2018-06-19T00:00:00Z"), d("2018-06-26T00:00:00Z")); got != "between 2018-06-19 and 2018-06-26" {
		t.Error(got)
	}
}

func TestHeatSeries(t *testing.T) {
	emb := func(s string, v ...float64) query.Embedding { return query.Embedding{Series: s, Version: 1, Vector: v} }
	all := []query.Embedding{
		emb("a#x", 1, 0), emb("b#x", 0.9, 0.1), emb("c#x", 0, 1), emb("d#x", 0.1, 0.9), emb("e#x", -1, 0), emb("f#x", 0.5, 0.5),
	}
	names := func(es []query.Embedding) (out []string) {
		for _, e := range es {
			out = append(out, e.Series)
		}
		return out
	}
	if got := names(heatSeries(all, nil, 10)); len(got) != 6 {
		t.Errorf("all: %v", got)
	}
	// c, then its nearest (d, f), sorted by key.
	if got := names(heatSeries(all, []string{"c#x"}, 3)); len(got) != 3 || got[0] != "c#x" || got[1] != "d#x" || got[2] != "f#x" {
		t.Errorf("c and neighbours: %v", got)
	}
	// Two series, their nearest in turn.
	if got := names(heatSeries(all, []string{"a#x", "c#x"}, 4)); len(got) != 4 || got[0] != "a#x" || got[1] != "b#x" || got[2] != "c#x" || got[3] != "d#x" {
		t.Errorf("a, c and neighbours: %v", got)
	}
	if v := commonVersion([]query.Embedding{{Version: 3}, {Version: 4}, {Version: 3}, {Version: 4}, {Version: 0}}); v != 4 {
		t.Errorf("common version %d, want 4 (a tie: the newer)", v)
	}
	if s := shorten("abcdefghij", 5); s != "ab…ij" {
		t.Errorf("shorten: %q", s)
	}
}
