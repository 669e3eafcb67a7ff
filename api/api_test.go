package api_test

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/api"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/query/querytest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type server struct {
	fx  *querytest.Fixture
	url string
}

// each runs f with an API server over the shared fixture in each query
// language.
func each(t *testing.T, f func(t *testing.T, s server)) {
	e := querytest.Shared(t)
	for _, c := range e.Clients() {
		t.Run(string(c.Language()), func(t *testing.T) {
			now := func() time.Time { return e.Fixture.Start.Add(30 * 24 * time.Hour) }
			srv := httptest.NewServer(api.Handler(c, api.Options{Model: e.Fixture.Model, Now: now, Timeout: time.Minute}))
			t.Cleanup(srv.Close)
			f(t, server{fx: e.Fixture, url: srv.URL})
		})
	}
}

// get requests path with the parameters (pairs of name and value) and
// decodes the JSON answer into v (if not nil); it returns the status.
func (s server) get(t *testing.T, path string, v any, kv ...string) int {
	t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return s.getRaw(t, path+"?"+q.Encode(), v)
}

func (s server) getRaw(t *testing.T, pathQuery string, v any) int {
	t.Helper()
	resp, err := http.Get(s.url + pathQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s: content type %q", pathQuery, ct)
	}
	var e struct {
		Error  string
		Status int
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || e.Status != resp.StatusCode {
			t.Errorf("%s: %d with body %s: not a JSON error", pathQuery, resp.StatusCode, body)
		}
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v\n%s", pathQuery, err, body)
		}
	}
	return resp.StatusCode
}

type similarResp struct {
	Series      string
	Model       string
	Version     int64
	VersionFrom string `json:"version_from"`
	Time        string
	K           int
	Matches     []struct {
		Rank    int
		Series  string
		Score   float64
		Cosine  float64
		Time    string
		Version int64
	}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func TestSimilar(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		for _, c := range []struct {
			series string
			k      int
			ver    int64
		}{
			{`cpu,host=a#usage`, 3, query.NewestVersion},
			{`cpu,region=eu,host=a#usage`, 100, query.NewestVersion}, // tags in any order
			{`mem,host=c#used`, 10, query.NewestVersion},             // lags at version 3
			{`cpu,host=a#usage`, 10, 3},
			{`mem,host=a,note="q'#used`, 10, 0},
		} {
			kv := []string{"series", c.series, "k", strconv.Itoa(c.k)}
			if c.ver != query.NewestVersion {
				kv = append(kv, "version", strconv.FormatInt(c.ver, 10))
			}
			var r similarResp
			if st := s.get(t, "/api/v1/similar", &r, kv...); st != http.StatusOK {
				t.Fatalf("%v: status %d", c, st)
			}
			key, _ := query.CanonicalSeries(c.series)
			q, want, _ := s.fx.Similar(key, time.Time{}, c.k, c.ver)
			from := "newest"
			if c.ver != query.NewestVersion {
				from = "request"
			}
			if r.Series != key || r.Model != s.fx.Model || r.Version != q.Version || r.VersionFrom != from || r.Time != ts(q.Time) || r.K != c.k || len(r.Matches) != len(want) {
				t.Fatalf("%v: %+v, want version %d, %d matches", c, r, q.Version, len(want))
			}
			for i, m := range r.Matches {
				w := want[i]
				if m.Rank != i+1 || m.Series != w.Series || math.Abs(m.Score-w.Score) > 1e-12 || math.Abs(m.Cosine-w.Cosine) > 1e-12 || m.Time != ts(w.Time) || m.Version != q.Version {
					t.Errorf("%v match %d: %+v, want %+v", c, i, m, w)
				}
			}
		}
		// at: the latest embeddings at or before it.
		at := s.fx.Embeddings[`cpu,host=a#usage`][3].Time
		var r similarResp
		if st := s.get(t, "/api/v1/similar", &r, "series", `cpu,host=a#usage`, "at", at.Format(time.RFC3339)); st != http.StatusOK || r.Version != 3 || r.Time != ts(at) {
			t.Errorf("at: %d %+v", st, r)
		}
		// No embedding of the version, of the series, of the model: 404.
		for _, kv := range [][]string{
			{"series", `cpu,host=a#usage`, "version", "99"},
			{"series", `cpu,host=nope#usage`},
			{"series", `cpu,host=a#usage`, "model", s.fx.Other},
		} {
			if st := s.get(t, "/api/v1/similar", nil, kv...); st != http.StatusNotFound {
				t.Errorf("%q: status %d, want 404", kv, st)
			}
		}
	})
}

func TestEmbedding(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		var r struct {
			Series    string
			Model     string
			Version   int64
			Time      string
			Embedding []float64
		}
		key := `disk,model=x,path=C:\\data#free`
		embs := s.fx.Embeddings[key]
		for _, c := range []struct {
			kv   []string
			want query.Embedding
		}{
			{[]string{"series", key}, embs[5]},
			{[]string{"series", key, "version", "0"}, embs[2]},
			{[]string{"series", key, "version", "3"}, embs[3]},
			{[]string{"series", key, "at", ts(embs[4].Time.Add(-time.Nanosecond))}, embs[3]},
			{[]string{"series", key, "at", ts(embs[2].Time), "version", "0"}, embs[2]},
		} {
			if st := s.get(t, "/api/v1/embedding", &r, c.kv...); st != http.StatusOK {
				t.Fatalf("%q: status %d", c.kv, st)
			}
			if r.Series != key || r.Version != c.want.Version || r.Time != ts(c.want.Time) || len(r.Embedding) != len(c.want.Vector) || r.Embedding[0] != c.want.Vector[0] {
				t.Errorf("%q: %+v, want %+v", c.kv, r, c.want)
			}
		}
		if st := s.get(t, "/api/v1/embedding", nil, "series", key, "at", ts(embs[0].Time.Add(-time.Second))); st != http.StatusNotFound {
			t.Errorf("before the first: %d", st)
		}
	})
}

func TestForecastAndAnomaly(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		key := `cpu,host=a,region=eu#usage`
		fc := s.fx.Forecasts[key]
		var r struct {
			Series, Model, From, To string
			Points                  []struct {
				Time              string
				Predicted, Actual *float64
				AbsError          *float64 `json:"abs_error"`
				LastValue         *float64 `json:"last_value"`
				LastValueAbsError *float64 `json:"last_value_abs_error"`
			}
		}
		if st := s.get(t, "/api/v1/forecast", &r, "series", key, "from", ts(fc[10].Time), "to", ts(fc[95].Time)); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
		if r.Series != key || r.From != ts(fc[10].Time) || len(r.Points) != 85 {
			t.Fatalf("%+v", r)
		}
		nulls := 0
		for i, p := range r.Points {
			w := fc[10+i]
			if p.Time != ts(w.Time) || *p.Predicted != w.Predicted || (p.Actual == nil) != math.IsNaN(w.Actual) {
				t.Errorf("point %d: %+v, want %+v", i, p, w)
			}
			if p.Actual == nil {
				nulls++
				if p.AbsError != nil || p.LastValueAbsError != nil {
					t.Errorf("point %d: errors without an actual value", i)
				}
			}
		}
		if nulls == 0 {
			t.Error("no null actual: the null case is not tested")
		}

		var a struct {
			MinScore float64 `json:"min_score"`
			Points   []struct {
				Time                        string
				Score, Surprise, Z, Novelty *float64
			}
		}
		if st := s.get(t, "/api/v1/anomaly", &a, "series", key, "min_score", "0.5"); st != http.StatusOK {
			t.Fatalf("anomaly: status %d", st)
		}
		var want []query.AnomalyPoint
		for _, p := range s.fx.Anomalies[key] {
			if p.Score >= 0.5 {
				want = append(want, p)
			}
		}
		if a.MinScore != 0.5 || len(a.Points) != len(want) || len(want) == 0 {
			t.Fatalf("anomaly: %+v, want %d points", a, len(want))
		}
		for i, p := range a.Points {
			if p.Time != ts(want[i].Time) || *p.Score != want[i].Score || (p.Novelty == nil) != math.IsNaN(want[i].Novelty) {
				t.Errorf("anomaly %d: %+v, want %+v", i, p, want[i])
			}
		}
		// Unknown series: 200 and no points.
		if st := s.get(t, "/api/v1/anomaly", &a, "series", `cpu,host=nope#usage`); st != http.StatusOK || len(a.Points) != 0 {
			t.Errorf("unknown series: %d %d points", st, len(a.Points))
		}
		// Relative times, against the injected clock (30 days after the
		// fixture's start: the last day holds nothing).
		if st := s.get(t, "/api/v1/forecast", &r, "series", key, "from", "-24h"); st != http.StatusOK || len(r.Points) != 0 {
			t.Errorf("relative from: %d %d points", st, len(r.Points))
		}
	})
}

func TestSeries(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		var r struct {
			Model  string
			Series []struct {
				Series string
				Latest map[string]string
			}
			Truncated bool
		}
		if st := s.get(t, "/api/v1/series", &r); st != http.StatusOK || len(r.Series) != len(s.fx.Series) || r.Truncated {
			t.Fatalf("all: %d %+v", st, r)
		}
		for _, x := range r.Series {
			es := s.fx.Embeddings[x.Series]
			if x.Latest["embedding"] != ts(es[len(es)-1].Time) {
				t.Errorf("%s: %v", x.Series, x.Latest)
			}
		}
		for _, c := range []struct {
			kv   []string
			want []string
		}{
			{[]string{"tag", "host:a", "measurement", "cpu"}, []string{`cpu,host=a#usage`, `cpu,host=a,region=eu#usage`, `cpu,host=a,region=eu,zone=1#usage`}},
			{[]string{"tag", "host:a", "tag", "region:eu", "field", "usage"}, []string{`cpu,host=a,region=eu#usage`, `cpu,host=a,region=eu,zone=1#usage`}},
			{[]string{"tag", `path:C:\data`}, []string{`disk,model=x,path=C:\\data#free`}},
			{[]string{"tag", `note:"q'`}, []string{`mem,host=a,note="q'#used`}},
			{[]string{"tag", `note:a,b${x}`}, []string{`mem,host=b,note=a\,b${x}#used`}},
			{[]string{"measurement", "mem", "limit", "2"}, []string{`mem,host=a,note="q'#used`, `mem,host=b,note=a\,b${x}#used`}},
		} {
			if st := s.get(t, "/api/v1/series", &r, c.kv...); st != http.StatusOK {
				t.Fatalf("%q: status %d", c.kv, st)
			}
			var got []string
			for _, x := range r.Series {
				got = append(got, x.Series)
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("%q: %q, want %q", c.kv, got, c.want)
			}
		}
		if s.get(t, "/api/v1/series", &r, "measurement", "mem", "limit", "2"); !r.Truncated {
			t.Error("limit 2 of 3: not truncated")
		}
	})
}

// TestBadRequests: every malformed request gets 400 (404, 405 for a path
// or method) with a JSON error naming what to change; no query runs.
func TestBadRequests(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		for _, c := range []struct {
			path string
			kv   []string
			want string
		}{
			{"/api/v1/similar", nil, "series is required"},
			{"/api/v1/similar", []string{"series", ""}, "series is required"},
			{"/api/v1/similar", []string{"series", "cpu,host=a"}, "malformed series key"},
			{"/api/v1/similar", []string{"series", "cpu#u", "k", "0"}, "parameter k"},
			{"/api/v1/similar", []string{"series", "cpu#u", "k", "1001"}, "parameter k"},
			{"/api/v1/similar", []string{"series", "cpu#u", "k", "three"}, "parameter k"},
			{"/api/v1/similar", []string{"series", "cpu#u", "version", "v4"}, "parameter version"},
			{"/api/v1/similar", []string{"series", "cpu#u", "version", "-9223372036854775808"}, "parameter version"},
			{"/api/v1/similar", []string{"series", "cpu#u", "at", "yesterday"}, "parameter at"},
			{"/api/v1/similar", []string{"series", "cpu#u", "from", "2024-01-01"}, `unknown parameter "from"`},
			{"/api/v1/similar", []string{"series", "cpu#u", "k", "1", "k", "2"}, `"k" given 2 times`},
			{"/api/v1/similar", []string{"series", "cpu#u", "model", ""}, "model is empty"},
			{"/api/v1/similar", []string{"series", "cpu#u", "model", "a\nb"}, "control character"},
			{"/api/v1/embedding", []string{"series", "cpu,host=a\nb#u"}, "control character"},
			{"/api/v1/embedding", []string{"series", "cpu,host=a\\\\#u"}, "ends with a backslash"},
			{"/api/v1/embedding", []string{"series", "cpu,host=\xff#u"}, "not valid UTF-8"},
			{"/api/v1/forecast", []string{"series", "cpu#u", "from", "2024-02-01", "to", "2024-01-01"}, "is not after from"},
			{"/api/v1/forecast", []string{"series", "cpu#u", "to", ""}, "parameter to"},
			{"/api/v1/anomaly", []string{"series", "cpu#u", "min_score", "1.5"}, "min_score"},
			{"/api/v1/anomaly", []string{"series", "cpu#u", "min_score", "NaN"}, "min_score"},
			{"/api/v1/series", []string{"tag", "host"}, "KEY:VALUE"},
			{"/api/v1/series", []string{"tag", "host:"}, "KEY:VALUE"},
			{"/api/v1/series", []string{"limit", "0"}, "parameter limit"},
			{"/api/v1/series", []string{"measurement", ""}, "measurement is empty"},
			{"/api/v1/series", []string{"tag", "ho\tst:a"}, "control character"},
			{"/api/v1/series", []string{"series", "cpu#u"}, `unknown parameter "series"`},
		} {
			var e struct{ Error string }
			if st := s.get(t, c.path, &e, c.kv...); st != http.StatusBadRequest || !strings.Contains(e.Error, c.want) {
				t.Errorf("%s %q: %d %q, want 400 with %q", c.path, c.kv, st, e.Error, c.want)
			}
		}
		var e struct{ Error string }
		if st := s.getRaw(t, "/api/v1/similar?series=%zz", &e); st != http.StatusBadRequest || !strings.Contains(e.Error, "percent-encode") {
			t.Errorf("bad escape: %d %q", st, e.Error)
		}
		if st := s.getRaw(t, "/api/v1/nope", &e); st != http.StatusNotFound {
			t.Errorf("unknown endpoint: %d", st)
		}
		if st := s.getRaw(t, "/", &e); st != http.StatusNotFound {
			t.Errorf("root: %d", st)
		}
		resp, err := http.Post(s.url+"/api/v1/similar?series=cpu%23u", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST: %d %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}

// TestInjection: series names, models and tag filters built to break out
// of InfluxQL's or Flux's quoting get 400 or an empty result (404 where
// the answer is one series' embedding), never a failed query (5xx), and
// the data is all still there after.
func TestInjection(t *testing.T) {
	hostile := []string{
		`cpu,host=a' OR 'a'='a#usage`,
		`cpu,host=a' OR host =~ /.*/ --#usage`,
		`cpu,host=a" OR "a"="a#usage`,
		`cpu,host=a") |> drop(columns: ["host#usage`,
		`cpu,host=a" or true or r.host == "#usage`,
		`cpu,host=a |> yield()#usage`,
		`cpu,host=a'; DROP DATABASE x; SELECT '#usage`,
		`cpu,host=a; DROP MEASUREMENT tsrep_forecast#usage`,
		`cpu,host=a\; SHOW DATABASES#usage`,
		`cpu,host=C:\\\\data\\'#usage`,
		`cpu,host=a\\\#usage`,
		"cpu,host=a\nb#usage",
		"cpu,host=a\r\nSHOW DATABASES#usage",
		"cpu,host=a\x00#usage",
		`cpu,ho"st\ \=x=a#u${x}`,
		`cpu,host=${r.host}#usage`,
		`c"p'u\,x,host=a#usage`,
		`cpu,host=a#usage" |> drop(columns: ["_value"]) //`,
		`cpu,"host"=a#usage`,
		"cpu,host=\xff\xfe#usage",
	}
	each(t, func(t *testing.T, s server) {
		for _, h := range hostile {
			for _, c := range []struct {
				path string
				kv   []string
			}{
				{"/api/v1/similar", []string{"series", h}},
				{"/api/v1/similar", []string{"series", h, "version", "0"}},
				{"/api/v1/similar", []string{"series", `cpu,host=a#usage`, "model", h}},
				{"/api/v1/embedding", []string{"series", h}},
				{"/api/v1/forecast", []string{"series", h}},
				{"/api/v1/anomaly", []string{"series", h, "min_score", "0.5"}},
				{"/api/v1/series", []string{"measurement", h}},
				{"/api/v1/series", []string{"tag", "host:" + h}},
				{"/api/v1/series", []string{"tag", h + ":a"}},
				{"/api/v1/series", []string{"field", h, "model", h}},
			} {
				var r struct {
					Error   string
					Matches []any
					Points  []any
					Series  any
				}
				st := s.get(t, c.path, &r, c.kv...)
				switch {
				case st == http.StatusBadRequest || st == http.StatusNotFound:
				case st == http.StatusOK:
					list, _ := r.Series.([]any)
					if len(r.Matches)+len(r.Points)+len(list) != 0 {
						t.Errorf("%s %q: 200 with data: %+v", c.path, c.kv, r)
					}
				default:
					t.Errorf("%s %q: status %d: %s", c.path, c.kv, st, r.Error)
				}
			}
		}
		// Everything is still there.
		var r struct{ Series []any }
		if st := s.get(t, "/api/v1/series", &r); st != http.StatusOK || len(r.Series) != len(s.fx.Series) {
			t.Errorf("after the injections: %d, %d series", st, len(r.Series))
		}
	})
}

// TestQueryFailure: InfluxDB failing is 502, with the reason.
func TestQueryFailure(t *testing.T) {
	e := querytest.Shared(t)
	c, err := query.Open(query.Options{URL: e.Influx.URL, Bucket: "no_such_db", Prefix: e.Fixture.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(c, api.Options{Model: e.Fixture.Model}))
	defer srv.Close()
	var r struct{ Error string }
	if st := (server{url: srv.URL}).get(t, "/api/v1/series", &r); st != http.StatusBadGateway || !strings.Contains(r.Error, "database not found") {
		t.Errorf("%d %q", st, r.Error)
	}
	// No default model: a request must name one.
	srv2 := httptest.NewServer(api.Handler(e.Client, api.Options{}))
	defer srv2.Close()
	if st := (server{url: srv2.URL}).get(t, "/api/v1/series", &r); st != http.StatusBadRequest || !strings.Contains(r.Error, "model is required") {
		t.Errorf("no model: %d %q", st, r.Error)
	}
	if st := (server{url: srv2.URL}).get(t, "/api/v1/series", &r, "model", e.Fixture.Model); st != http.StatusOK {
		t.Errorf("model named: %d %q", st, r.Error)
	}
}
