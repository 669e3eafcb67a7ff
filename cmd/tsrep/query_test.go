package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/query/querytest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type cliEnv struct {
	fx     *querytest.Fixture
	in     testenv.Influx
	client *query.Client
	lang   query.Language
	config string // written per test
}

// cliSetup returns the fixture, written once, and a config file pointing
// at it, reading with lang, written for each test.
func cliSetup(t *testing.T, lang query.Language) cliEnv {
	t.Helper()
	s := querytest.Shared(t)
	e := cliEnv{fx: s.Fixture, in: s.Influx, client: s.Client, lang: lang}
	e.config = filepath.Join(t.TempDir(), "config.toml")
	text := fmt.Sprintf("[influx]\nurl = %q\nbucket = %q\nmeasurement_prefix = %q\nquery_language = %q\n\n[model]\nname = %q\n",
		e.in.URL, e.in.Database, e.fx.Prefix, lang, e.fx.Model)
	if err := os.WriteFile(e.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// eachLang runs f as a subtest with a config reading in each language.
func eachLang(t *testing.T, f func(t *testing.T, e cliEnv)) {
	for _, l := range []query.Language{query.InfluxQL, query.Flux} {
		t.Run(string(l), func(t *testing.T) { f(t, cliSetup(t, l)) })
	}
}

// run runs tsrep with args and returns its stdout and stderr.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "tsrep", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newQueryCmd(), newReportCmd())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(testenv.Context(t, time.Minute))
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := run(t, args...)
	if err != nil {
		t.Fatalf("tsrep %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func parseCSV(t *testing.T, s string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, s)
	}
	return recs
}

func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	if s == "" {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// val reads a JSON number that may be null (NaN).
func val(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func TestQueryEmbedding(t *testing.T) {
	eachLang(t, func(t *testing.T, e cliEnv) {
		s := `mem,host=b,note=a\,b${x}#used`
		embs := e.fx.Embeddings[s]
		want := embs[3]
		at := want.Time.Format(time.RFC3339)

		var js struct {
			Series    string
			Model     string
			Time      string
			Version   int64
			Embedding []float64
		}
		out := mustRun(t, "query", "embedding", s, "--at", at, "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if js.Series != s || js.Model != e.fx.Model || js.Time != want.Time.Format(time.RFC3339Nano) || js.Version != want.Version || !slices.Equal(js.Embedding, want.Vector) {
			t.Errorf("json %+v, want %+v", js, want)
		}

		recs := parseCSV(t, mustRun(t, "query", "embedding", s, "--at", at, "--config", e.config, "--format", "csv"))
		if len(recs) != 2 || len(recs[0]) != 4+len(want.Vector) || recs[0][3] != "version" || recs[0][4] != "e0" || recs[1][0] != s || recs[1][1] != e.fx.Model || recs[1][3] != "3" {
			t.Fatalf("csv %q", recs)
		}
		for i, v := range want.Vector {
			if parseFloat(t, recs[1][4+i]) != v {
				t.Errorf("csv e%d = %s, want %v", i, recs[1][4+i], v)
			}
		}

		// The default table: one aligned "name value" line per component.
		out = mustRun(t, "query", "embedding", s, "--config", e.config)
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 5+len(want.Vector) || !strings.HasPrefix(lines[0], "series   "+s) || !strings.Contains(out, "\nversion  4\ndim      8\n") {
			t.Fatalf("table:\n%s", out)
		}
		col := strings.Index(lines[0], s)
		last := embs[len(embs)-1]
		for i, v := range last.Vector {
			l := lines[5+i]
			if !strings.HasPrefix(l, fmt.Sprintf("e%d", i)) || strings.TrimSpace(l[:col]) != fmt.Sprintf("e%d", i) {
				t.Errorf("table line %q is not aligned at column %d", l, col)
			}
			if got := parseFloat(t, l[col:]); math.Abs(got-v) > 1e-5*math.Abs(v) {
				t.Errorf("table e%d = %v, want %v", i, got, v)
			}
		}

		// --version: the latest embedding of that version.
		out = mustRun(t, "query", "embedding", s, "--version", "3", "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil || js.Version != 3 || js.Time != embs[3].Time.Format(time.RFC3339Nano) {
			t.Errorf("--version 3: %+v %v", js, err)
		}
		// Embeddings written without a version are version 0.
		out = mustRun(t, "query", "embedding", s, "--version", "0", "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil || js.Version != 0 || js.Time != embs[1].Time.Format(time.RFC3339Nano) {
			t.Errorf("--version 0: %+v %v", js, err)
		}
	})
}

type similarJSON struct {
	Rank    int
	Series  string
	Score   float64
	Cosine  float64
	Time    string
	Version int64
}

func TestQuerySimilar(t *testing.T) {
	eachLang(t, func(t *testing.T, e cliEnv) {
		s := `cpu,host=a,region=eu#usage`
		_, want, _ := e.fx.Similar(s, time.Time{}, 4, query.NewestVersion)
		if len(want) != 4 {
			t.Fatal(want)
		}
		var js []similarJSON
		out := mustRun(t, "query", "similar", s, "--k", "4", "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if len(js) != 4 {
			t.Fatalf("json: %d matches", len(js))
		}
		for i, m := range js {
			if m.Rank != i+1 || m.Series != want[i].Series || math.Abs(m.Score-want[i].Score) > 1e-12 || math.Abs(m.Cosine-want[i].Cosine) > 1e-12 || m.Time != want[i].Time.Format(time.RFC3339Nano) || m.Version != 4 {
				t.Errorf("json match %d: %+v, want %+v", i, m, want[i])
			}
		}
		recs := parseCSV(t, mustRun(t, "query", "similar", s, "-k", "4", "--config", e.config, "--format", "csv"))
		if !slices.Equal(recs[0], []string{"rank", "series", "score", "cosine", "time", "version"}) || len(recs) != 5 {
			t.Fatalf("csv %q", recs)
		}
		for i, r := range recs[1:] {
			if r[0] != strconv.Itoa(i+1) || r[1] != want[i].Series || math.Abs(parseFloat(t, r[2])-want[i].Score) > 1e-12 || math.Abs(parseFloat(t, r[3])-want[i].Cosine) > 1e-12 || r[5] != "4" {
				t.Errorf("csv row %d: %q, want %+v", i, r, want[i])
			}
		}
		// The table says which version it compared within.
		out, stderr, err := run(t, "query", "similar", s, "--config", e.config)
		if err != nil || !strings.Contains(stderr, "compared within encoder version 4: that of the newest embedding of "+s) {
			t.Errorf("table: %v\n%s", err, stderr)
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1+4 || !strings.HasPrefix(lines[0], "rank  series") {
			t.Errorf("table (4 other series of version 4):\n%s", out)
		}
		// --version 3: every other series' latest embedding of version 3.
		_, want3, _ := e.fx.Similar(s, time.Time{}, 10, 3)
		out, stderr, err = run(t, "query", "similar", s, "--version", "3", "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil || len(js) != len(want3) || len(js) < 5 {
			t.Fatalf("--version 3: %v %v\n%s", err, len(js), out)
		}
		for i, m := range js {
			if m.Series != want3[i].Series || m.Time != want3[i].Time.Format(time.RFC3339Nano) || m.Version != 3 {
				t.Errorf("--version 3 match %d: %+v, want %+v", i, m, want3[i])
			}
		}
		// A series that lags at version 3 is compared within 3 by default.
		_, stderr, _ = run(t, "query", "similar", `mem,host=c#used`, "--config", e.config)
		if !strings.Contains(stderr, "compared within encoder version 3") {
			t.Errorf("lagging series: %s", stderr)
		}
	})
}

func TestQueryForecast(t *testing.T) {
	eachLang(t, testQueryForecast)
}

func testQueryForecast(t *testing.T, e cliEnv) {
	s := `disk,model=x,path=C:\\data#free`
	all := e.fx.Forecasts[s]
	from, to := all[80].Time, all[len(all)-1].Time.Add(time.Second)
	var js []struct {
		Time              string
		Predicted         *float64
		Actual            *float64
		AbsError          *float64 `json:"abs_error"`
		LastValue         *float64 `json:"last_value"`
		LastValueAbsError *float64 `json:"last_value_abs_error"`
	}
	out := mustRun(t, "query", "forecast", s, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--config", e.config, "--format", "json")
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	want := all[80:]
	if len(js) != len(want) {
		t.Fatalf("json: %d points, want %d", len(js), len(want))
	}
	nulls := 0
	for i, p := range js {
		w := want[i]
		if p.Time != w.Time.Format(time.RFC3339Nano) || !same(val(p.Predicted), w.Predicted) || !same(val(p.LastValue), w.LastValue) ||
			!same(val(p.Actual), w.Actual) || !same(val(p.AbsError), w.AbsError) || !same(val(p.LastValueAbsError), w.LastValueAbsError) {
			t.Errorf("json %d: %s %v %v %v %v %v, want %+v", i, p.Time, val(p.Predicted), val(p.Actual), val(p.AbsError), val(p.LastValue), val(p.LastValueAbsError), w)
		}
		if math.IsNaN(w.Actual) {
			nulls++
		}
	}
	if nulls == 0 {
		t.Fatal("no unscored forecast in the range: the null case is not tested")
	}

	recs := parseCSV(t, mustRun(t, "query", "forecast", s, "--from", "2024-03-01", "--to", "now", "--config", e.config, "--format", "csv"))
	if !slices.Equal(recs[0], []string{"time", "predicted", "actual", "abs_error", "last_value", "last_value_abs_error"}) || len(recs) != len(all)+1 {
		t.Fatalf("csv: %d rows, header %q", len(recs), recs[0])
	}
	for i, r := range recs[1:] {
		w := all[i]
		if r[0] != w.Time.Format(time.RFC3339Nano) || !same(parseFloat(t, r[1]), w.Predicted) || !same(parseFloat(t, r[2]), w.Actual) ||
			!same(parseFloat(t, r[3]), w.AbsError) || !same(parseFloat(t, r[4]), w.LastValue) || !same(parseFloat(t, r[5]), w.LastValueAbsError) {
			t.Errorf("csv row %d: %q, want %+v", i, r, w)
		}
	}

	// Nothing in the last day (relative time): an empty table and a note.
	out, stderr, err := run(t, "query", "forecast", s, "--from", "-24h", "--config", e.config)
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(stderr, "no forecasts of series") {
		t.Errorf("empty range: %v\n%s\n%s", err, out, stderr)
	}
}

func TestQueryImputedAndTrain(t *testing.T) {
	eachLang(t, testQueryImputedAndTrain)
}

func testQueryImputedAndTrain(t *testing.T, e cliEnv) {
	s := `cpu,host=a#usage`
	var js []struct {
		Time  string
		Value float64
	}
	out := mustRun(t, "query", "imputed", s, "--config", e.config, "--format", "json")
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	want := e.fx.Imputed[s]
	if len(js) != len(want) {
		t.Fatalf("%d imputed, want %d", len(js), len(want))
	}
	for i, p := range js {
		if p.Time != want[i].Time.Format(time.RFC3339Nano) || p.Value != want[i].Value {
			t.Errorf("%d: %+v, want %+v", i, p, want[i])
		}
	}

	// The other model: forecast loss only.
	recs := parseCSV(t, mustRun(t, "query", "train", "--model", e.fx.Other, "--config", e.config, "--format", "csv"))
	if len(recs) != len(e.fx.OtherTrain)+1 || recs[0][5] != "loss_forecast" {
		t.Fatalf("csv: %q", recs)
	}
	for i, r := range recs[1:] {
		w := e.fx.OtherTrain[i]
		if r[1] != w.Topic || r[2] != w.Partition || r[3] != strconv.FormatInt(w.Step, 10) || parseFloat(t, r[5]) != w.LossForecast || r[6] != "" || r[7] != "" {
			t.Errorf("csv row %d: %q, want %+v", i, r, w)
		}
	}
}

func TestQueryAnomaly(t *testing.T) {
	eachLang(t, func(t *testing.T, e cliEnv) {
		s := `disk,model=x,path=C:\\data#free`
		var want []query.AnomalyPoint
		for _, a := range e.fx.Anomalies[s] {
			if a.Score >= 0.5 {
				want = append(want, a)
			}
		}
		var js []struct {
			Time                        string
			Score, Surprise, Z, Novelty *float64
		}
		out := mustRun(t, "query", "anomaly", s, "--min-score", "0.5", "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if len(js) != len(want) || len(want) == 0 {
			t.Fatalf("%d points, want %d", len(js), len(want))
		}
		for i, p := range js {
			w := want[i]
			if p.Time != w.Time.Format(time.RFC3339Nano) || val(p.Score) != w.Score || !same(val(p.Surprise), w.Surprise) || !same(val(p.Z), w.Z) || !same(val(p.Novelty), w.Novelty) {
				t.Errorf("%d: %+v, want %+v", i, p, w)
			}
		}
		all := e.fx.Anomalies[s]
		recs := parseCSV(t, mustRun(t, "query", "anomaly", s, "--from", all[10].Time.Format(time.RFC3339), "--to", all[20].Time.Format(time.RFC3339), "--config", e.config, "--format", "csv"))
		if !slices.Equal(recs[0], []string{"time", "score", "surprise", "z", "novelty"}) || len(recs) != 11 {
			t.Fatalf("csv: %q", recs)
		}
		if nov := recs[1][4] + recs[2][4]; !(recs[1][4] == "" || recs[2][4] == "") || nov == "" {
			t.Errorf("novelty is written every other point: %q", recs[1:3])
		}
		_, stderr, err := run(t, "query", "anomaly", s, "--model", e.fx.Other, "--config", e.config)
		if err != nil || !strings.Contains(stderr, "no anomaly scores of series") {
			t.Errorf("a model without anomaly scores: %v %s", err, stderr)
		}
	})
}

func TestQuerySeries(t *testing.T) {
	eachLang(t, func(t *testing.T, e cliEnv) {
		recs := parseCSV(t, mustRun(t, "query", "series", "--config", e.config, "--format", "csv"))
		if !slices.Equal(recs[0], []string{"series", "forecast", "embedding", "anomaly", "imputed"}) || len(recs) != 1+len(e.fx.Series) {
			t.Fatalf("csv %q", recs)
		}
		for _, r := range recs[1:] {
			_, hasFc := e.fx.Forecasts[r[0]]
			es := e.fx.Embeddings[r[0]]
			if (r[1] != "") != hasFc || r[2] != es[len(es)-1].Time.Format(time.RFC3339Nano) || (r[3] != "") != hasFc {
				t.Errorf("row %q", r)
			}
		}
		var js []map[string]string
		out := mustRun(t, "query", "series", "--tag", "host:a", "--measurement", "cpu", "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil || len(js) != 3 || js[0]["series"] != `cpu,host=a#usage` {
			t.Errorf("filtered: %v\n%s", err, out)
		}
		out = mustRun(t, "query", "series", "--tag", `path:C:\data`, "--config", e.config, "--format", "json")
		if err := json.Unmarshal([]byte(out), &js); err != nil || len(js) != 1 || js[0]["series"] != `disk,model=x,path=C:\\data#free` {
			t.Errorf("a value with a colon and a backslash: %v\n%s", err, out)
		}
	})
}

func TestQueryExplain(t *testing.T) {
	// --explain does not connect: a URL nothing listens on is fine.
	out := mustRun(t, "query", "forecast", `cpu,host=a\ b#usage`, "--from", "2024-01-01", "--influx-url", "http://127.0.0.1:1", "--bucket", "tsrep", "--model", "ssl", "--explain")
	for _, w := range []string{
		"-- InfluxQL (what tsrep runs)\n" + `SELECT "predicted", "actual", abs("actual" - "predicted") AS "abs_error", "last_value", abs("actual" - "last_value") AS "last_value_abs_error" FROM "tsrep_forecast" WHERE`,
		`"host" = 'a b'`,
		"// Flux\n" + `from(bucket: "tsrep")`,
		`range(start: 2024-01-01T00:00:00Z, stop: 2262-01-01T00:00:00Z)`,
		`r.host == "a b"`,
		`pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("explain lacks %q:\n%s", w, out)
		}
	}
	if !strings.HasPrefix(out, "-- InfluxQL") {
		t.Errorf("InfluxQL, the default, is not first:\n%s", out)
	}
	out = mustRun(t, "query", "forecast", `cpu#usage`, "--influx-url", "http://127.0.0.1:1", "--model", "ssl", "--explain", "--query-language", "flux")
	if !strings.HasPrefix(out, "// Flux (what tsrep runs)\n") || !strings.Contains(out, "\n-- InfluxQL\n") {
		t.Errorf("flux first:\n%s", out)
	}
	out = mustRun(t, "query", "similar", `cpu#usage`, "--influx-url", "http://127.0.0.1:1", "--model", "ssl", "--explain")
	for _, w := range []string{
		"-- 1. the series' newest embedding: its version V is the one compared",
		"ORDER BY time DESC LIMIT 1",
		`"version" = V`,
		"-- 3. only if one of them has another version than V",
		"|> last()",
		"(if exists r.version then r.version else 0) == V)",
		"computed by tsrep",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("similar explain lacks %q:\n%s", w, out)
		}
	}
	out = mustRun(t, "query", "embedding", `cpu#usage`, "--version", "0", "--influx-url", "http://127.0.0.1:1", "--model", "ssl", "--explain")
	if !strings.Contains(out, `"version" = 0`) || !strings.Contains(out, `ORDER BY time ASC LIMIT 1`) || !strings.Contains(out, "count as 0") {
		t.Errorf("embedding --version 0 explain:\n%s", out)
	}
	out = mustRun(t, "query", "anomaly", `cpu#usage`, "--min-score", "0.9", "--influx-url", "http://127.0.0.1:1", "--model", "ssl", "--explain")
	if !strings.Contains(out, `"score" >= 0.9`) || !strings.Contains(out, "r.score >= 0.9") {
		t.Errorf("anomaly explain:\n%s", out)
	}
}

func TestQueryErrors(t *testing.T) {
	e := cliSetup(t, query.InfluxQL)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "embedding", "cpu#u", "--config", e.config, "--format", "xml"}, `--format "xml"`},
		{[]string{"query", "embedding", "cpu,host=a", "--config", e.config}, `series "cpu,host=a"`},
		{[]string{"query", "embedding", "cpu,host=zz#usage", "--config", e.config}, "no data"},
		{[]string{"query", "embedding", "cpu#u", "--at", "yesterday", "--config", e.config}, "--at"},
		{[]string{"query", "forecast", "cpu#u", "--from", "2024-02-01", "--to", "2024-01-01", "--config", e.config}, "not after --from"},
		{[]string{"query", "forecast", "cpu#u", "--config", filepath.Join(t.TempDir(), "missing.toml")}, "read config"},
		{[]string{"query", "similar", "cpu,host=a#usage", "--k", "0", "--config", e.config}, "k is 0"},
		{[]string{"report", "--out", t.TempDir(), "--config", e.config}, "--series"},
		{[]string{"report", "--series", "cpu#u", "--days", "-1", "--out", t.TempDir(), "--config", e.config}, "--days"},
		{[]string{"query", "similar", "cpu,host=a#usage", "--version", "x", "--config", e.config}, "--version"},
		{[]string{"query", "similar", "cpu,host=a#usage", "--version", "7", "--config", e.config}, "encoder version 7: no data"},
		{[]string{"query", "anomaly", "cpu,host=a#usage", "--min-score", "2", "--config", e.config}, "minimum score 2"},
		{[]string{"query", "train", "--query-language", "sql", "--config", e.config}, "--query-language"},
		{[]string{"query", "series", "--tag", "host", "--config", e.config}, "KEY:VALUE"},
		{[]string{"query", "embedding", "cpu,host=a\nb#usage", "--config", e.config}, "control character"},
		{[]string{"query", "train", "--bucket", "nope", "--config", e.config}, "database not found"},
	} {
		_, _, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tsrep %s: err %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestReportCommand(t *testing.T) {
	e := cliSetup(t, query.InfluxQL)
	dir := t.TempDir()
	out := mustRun(t, "report", "--series", `cpu,host=a#usage,disk,model=x,path=C:\\data#free`, "--out", dir, "--config", e.config)
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if p, ok := strings.CutPrefix(l, "wrote "); ok {
			files = append(files, filepath.Base(p))
		} else {
			t.Errorf("unexpected line %q", l)
		}
	}
	var want []string
	for _, s := range []string{"cpu_host_a_usage", "disk_model_x_path_C_data_free"} {
		for _, k := range []string{"forecast_", "imputed_", "anomaly_", "similar_"} {
			want = append(want, k+s+".png")
		}
	}
	want = append(want, "losses.png", "embeddings_cosine.png")
	if !slices.Equal(files, want) {
		t.Errorf("wrote %v, want %v", files, want)
	}
	out = mustRun(t, "report", "--series", `cpu,host=a#usage`, "--out", t.TempDir(), "--config", e.config, "--model", e.fx.Other, "--query-language", "flux")
	if !strings.Contains(out, "skipped embeddings_cosine.png: 0 series with embeddings") || !strings.Contains(out, "skipped similar_cpu_host_a_usage.png: no embedding") {
		t.Errorf("learner without embeddings:\n%s", out)
	}
}

func TestSplitSeriesKeys(t *testing.T) {
	for in, want := range map[string][]string{
		`cpu#u`:                              {`cpu#u`},
		`cpu,host=a#u,mem#v`:                 {`cpu,host=a#u`, `mem#v`},
		`cpu,host=a#u,mem,host=b,r=1#v`:      {`cpu,host=a#u`, `mem,host=b,r=1#v`},
		`cpu,note=a\,b#u,disk,p=C:\\x#free,`: {`cpu,note=a\,b#u`, `disk,p=C:\\x#free`},
		`cpu,h=a\#b#u`:                       {`cpu,h=a\#b#u`},
	} {
		if got := splitSeriesKeys(in); !slices.Equal(got, want) {
			t.Errorf("splitSeriesKeys(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestServe: tsrep serve answers the API on --listen with the
// configuration's model and stops when its context ends.
func TestServe(t *testing.T) {
	e := cliSetup(t, query.InfluxQL)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	root := &cobra.Command{Use: "tsrep", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newServeCmd())
	root.SetOut(io.Discard)
	root.SetArgs([]string{"serve", "--listen", addr, "--config", e.config})
	ctx, cancel := context.WithCancel(testenv.Context(t, time.Minute))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	u := "http://" + addr + "/api/v1/similar?" + url.Values{"series": {`cpu,host=a#usage`}, "k": {"2"}}.Encode()
	var resp *http.Response
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err = http.Get(u); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v", err)
		case <-time.After(20 * time.Millisecond): // polling until it listens
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve does not answer: %v", err)
		}
	}
	var body struct {
		Model   string
		Version int64
		Matches []struct{ Series string }
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || body.Model != e.fx.Model || body.Version != 4 || len(body.Matches) != 2 {
		t.Errorf("%d %+v %v", resp.StatusCode, body, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve stopped with %v", err)
	}
}
