package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
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
	config string // written per test
}

// cliSetup returns the fixture, written once, and a config file pointing
// at it written for each test.
func cliSetup(t *testing.T) cliEnv {
	t.Helper()
	s := querytest.Shared(t)
	e := cliEnv{fx: s.Fixture, in: s.Influx, client: s.Client}
	e.config = filepath.Join(t.TempDir(), "config.toml")
	text := fmt.Sprintf("[influx]\nurl = %q\nbucket = %q\nmeasurement_prefix = %q\n\n[model]\nname = %q\n", e.in.URL, e.in.Database, e.fx.Prefix, e.fx.Model)
	if err := os.WriteFile(e.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
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
	e := cliSetup(t)
	s := `mem,host=b,note=a\,b${x}#used`
	embs := e.fx.Embeddings[s]
	want := embs[3]
	at := want.Time.Format(time.RFC3339)

	var js struct {
		Series    string
		Model     string
		Time      string
		Embedding []float64
	}
	out := mustRun(t, "query", "embedding", s, "--at", at, "--config", e.config, "--format", "json")
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if js.Series != s || js.Model != e.fx.Model || js.Time != want.Time.Format(time.RFC3339Nano) || !slices.Equal(js.Embedding, want.Vector) {
		t.Errorf("json %+v, want %+v", js, want)
	}

	recs := parseCSV(t, mustRun(t, "query", "embedding", s, "--at", at, "--config", e.config, "--format", "csv"))
	if len(recs) != 2 || len(recs[0]) != 3+len(want.Vector) || recs[0][3] != "e0" || recs[1][0] != s || recs[1][1] != e.fx.Model {
		t.Fatalf("csv %q", recs)
	}
	for i, v := range want.Vector {
		if parseFloat(t, recs[1][3+i]) != v {
			t.Errorf("csv e%d = %s, want %v", i, recs[1][3+i], v)
		}
	}

	// The default table: one aligned "name value" line per component.
	out = mustRun(t, "query", "embedding", s, "--config", e.config)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4+len(want.Vector) || !strings.HasPrefix(lines[0], "series  "+s) || !strings.Contains(out, "\ndim     8\n") {
		t.Fatalf("table:\n%s", out)
	}
	col := strings.Index(lines[0], s)
	last := embs[len(embs)-1]
	for i, v := range last.Vector {
		l := lines[4+i]
		if !strings.HasPrefix(l, fmt.Sprintf("e%d", i)) || strings.TrimSpace(l[:col]) != fmt.Sprintf("e%d", i) {
			t.Errorf("table line %q is not aligned at column %d", l, col)
		}
		if got := parseFloat(t, l[col:]); math.Abs(got-v) > 1e-5*math.Abs(v) {
			t.Errorf("table e%d = %v, want %v", i, got, v)
		}
	}
}

func TestQuerySimilar(t *testing.T) {
	e := cliSetup(t)
	s := `cpu,host=a,region=eu#usage`
	want, err := e.client.Similar(testenv.Context(t, time.Minute), s, time.Time{}, 4, e.fx.Model)
	if err != nil || len(want) != 4 {
		t.Fatal(want, err)
	}
	var js []struct {
		Rank   int
		Series string
		Score  float64
		Time   string
	}
	out := mustRun(t, "query", "similar", s, "--k", "4", "--config", e.config, "--format", "json")
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(js) != 4 {
		t.Fatalf("json: %d matches", len(js))
	}
	for i, m := range js {
		if m.Rank != i+1 || m.Series != want[i].Series || m.Score != want[i].Score || m.Time != want[i].Time.Format(time.RFC3339Nano) {
			t.Errorf("json match %d: %+v, want %+v", i, m, want[i])
		}
	}
	recs := parseCSV(t, mustRun(t, "query", "similar", s, "-k", "4", "--config", e.config, "--format", "csv"))
	if !slices.Equal(recs[0], []string{"rank", "series", "score", "time"}) || len(recs) != 5 {
		t.Fatalf("csv %q", recs)
	}
	for i, r := range recs[1:] {
		if r[0] != strconv.Itoa(i+1) || r[1] != want[i].Series || parseFloat(t, r[2]) != want[i].Score {
			t.Errorf("csv row %d: %q, want %+v", i, r, want[i])
		}
	}
	out = mustRun(t, "query", "similar", s, "--config", e.config)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != len(e.fx.Series) || !strings.HasPrefix(lines[0], "rank  series") {
		t.Errorf("table (default k=10, %d other series):\n%s", len(e.fx.Series)-1, out)
	}
}

func TestQueryForecast(t *testing.T) {
	e := cliSetup(t)
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
	e := cliSetup(t)
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

func TestQueryExplain(t *testing.T) {
	// --explain does not connect: a URL nothing listens on is fine.
	out := mustRun(t, "query", "forecast", `cpu,host=a\ b#usage`, "--from", "2024-01-01", "--influx-url", "http://127.0.0.1:1", "--bucket", "tsrep", "--model", "ssl", "--explain")
	for _, w := range []string{
		`from(bucket: "tsrep")`,
		`range(start: 2024-01-01T00:00:00Z, stop: 2262-01-01T00:00:00Z)`,
		`r.host == "a b"`,
		`pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		`-- InfluxQL`,
		`SELECT "predicted", "actual", abs("actual" - "predicted") AS "abs_error", "last_value", abs("actual" - "last_value") AS "last_value_abs_error" FROM "tsrep_forecast" WHERE`,
		`"host" = 'a b'`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("explain lacks %q:\n%s", w, out)
		}
	}
	out = mustRun(t, "query", "similar", `cpu#usage`, "--influx-url", "http://127.0.0.1:1", "--model", "ssl", "--explain")
	if !strings.Contains(out, "last()") || !strings.Contains(out, "ORDER BY time DESC LIMIT 1") {
		t.Errorf("similar explain:\n%s", out)
	}
}

func TestQueryErrors(t *testing.T) {
	e := cliSetup(t)
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
	} {
		_, _, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tsrep %s: err %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestReportCommand(t *testing.T) {
	e := cliSetup(t)
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
	want := []string{"forecast_cpu_host_a_usage.png", "imputed_cpu_host_a_usage.png", "forecast_disk_model_x_path_C_data_free.png",
		"imputed_disk_model_x_path_C_data_free.png", "losses.png", "embeddings_pca.png"}
	if !slices.Equal(files, want) {
		t.Errorf("wrote %v, want %v", files, want)
	}
	out = mustRun(t, "report", "--series", `cpu,host=a#usage`, "--out", t.TempDir(), "--config", e.config, "--model", e.fx.Other)
	if !strings.Contains(out, "skipped embeddings_pca.png: 0 series with embeddings") {
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
