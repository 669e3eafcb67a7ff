package query

import (
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/ingest"
)

func TestFluxString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:         `"plain"`,
		`say "hi"`:      `"say \"hi\""`,
		`C:\data\`:      `"C:\\data\\"`,
		`a b,c=d`:       `"a b,c=d"`,
		`${x} and $y`:   `"\${x} and $y"`,
		`$`:             `"$"`,
		"tab\tnl\ncr\r": `"tab\tnl\ncr\r"`,
		`é ü`:           `"é ü"`,
		`it's`:          `"it's"`,
		``:              `""`,
	} {
		if got := fluxString(in); got != want {
			t.Errorf("fluxString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestFluxColumn(t *testing.T) {
	for in, want := range map[string]string{
		"host":      `r.host`,
		"tag_model": `r.tag_model`,
		"_field":    `r._field`,
		"host name": `r["host name"]`,
		"a,b=c":     `r["a,b=c"]`,
		`k"q\`:      `r["k\"q\\"]`,
		"2x":        `r["2x"]`,
		"and":       `r["and"]`, // a keyword
		"exists":    `r["exists"]`,
	} {
		if got := fluxColumn(in); got != want {
			t.Errorf("fluxColumn(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestInfluxQLQuoting(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:    `'plain'`,
		`it's`:     `'it\'s'`,
		`C:\data`:  `'C:\\data'`,
		`say "hi"`: `'say "hi"'`,
		`a b,c=d`:  `'a b,c=d'`,
	} {
		if got := iqlString(in); got != want {
			t.Errorf("iqlString(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		`host`:      `"host"`,
		`host name`: `"host name"`,
		`k"q\x`:     `"k\"q\\x"`,
		`it's`:      `"it's"`,
	} {
		if got := iqlIdent(in); got != want {
			t.Errorf("iqlIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestBuildersEscapeSeriesKeys pins the filters built from series keys with
// quotes, backslashes, spaces, commas and tags that tsrep renames.
func TestBuildersEscapeSeriesKeys(t *testing.T) {
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		series     string
		flux, iql  string
		fluxStop   string
		iqlClauses string
	}{
		{
			series: `cpu,host=a#usage_idle`,
			flux:   `r._measurement == "tsrep_embedding" and r.field == "usage_idle" and r.host == "a" and r.measurement == "cpu" and r.model == "m"`,
			iql:    `WHERE "field" = 'usage_idle' AND "host" = 'a' AND "measurement" = 'cpu' AND "model" = 'm'`,
		},
		{ // unsorted tags in the key: the same series
			series: `cpu,region=eu,host=a#usage`,
			flux:   `r.field == "usage" and r.host == "a" and r.measurement == "cpu" and r.model == "m" and r.region == "eu"`,
			iql:    `"host" = 'a' AND "measurement" = 'cpu' AND "model" = 'm' AND "region" = 'eu'`,
		},
		{ // escaped space, comma and equals in names and values
			series: `my\ meas,host\ name=b\ 2,note=a\,b\=c#fi\#eld`,
			flux:   `r.field == "fi#eld" and r["host name"] == "b 2" and r.measurement == "my meas" and r.model == "m" and r.note == "a,b=c"`,
			iql:    `"field" = 'fi#eld' AND "host name" = 'b 2' AND "measurement" = 'my meas' AND "model" = 'm' AND "note" = 'a,b=c'`,
		},
		{ // quotes, backslash, ${ and input tags renamed tag_<name>
			series: `disk,model=x,path=C:\\data,q="it's",v=${x},field=f,measurement=mm#free`,
			flux:   `r.field == "free" and r.measurement == "disk" and r.model == "m" and r.path == "C:\\data" and r.q == "\"it's\"" and r.tag_field == "f" and r.tag_measurement == "mm" and r.tag_model == "x" and r.v == "\${x}"`,
			iql:    `"field" = 'free' AND "measurement" = 'disk' AND "model" = 'm' AND "path" = 'C:\\data' AND "q" = '"it\'s"' AND "tag_field" = 'f' AND "tag_measurement" = 'mm' AND "tag_model" = 'x' AND "v" = '${x}'`,
		},
		{ // tag_-prefixed, Flux's and InfluxDB's own names: renamed too (sinks.OutputTagKey)
			series: `cpu,tag_measurement=x,_value=v,time=t,table=b#u`,
			flux:   `r.field == "u" and r.measurement == "cpu" and r.model == "m" and r.tag__value == "v" and r.tag_table == "b" and r.tag_tag_measurement == "x" and r.tag_time == "t"`,
			iql:    `"field" = 'u' AND "measurement" = 'cpu' AND "model" = 'm' AND "tag__value" = 'v' AND "tag_table" = 'b' AND "tag_tag_measurement" = 'x' AND "tag_time" = 't'`,
		},
	}
	for _, c := range cases {
		flux, err := EmbeddingFlux("db", "tsrep_embedding", c.series, at, "m", NewestVersion)
		if err != nil {
			t.Fatalf("%s: %v", c.series, err)
		}
		if !strings.Contains(flux, c.flux) {
			t.Errorf("%s: flux\n%s\ndoes not contain\n%s", c.series, flux, c.flux)
		}
		if !strings.Contains(flux, "range(start: 0, stop: 2024-03-01T12:00:00.000000001Z)") || !strings.Contains(flux, c.flux+` and (r._field =~ /^e[0-9]+$/ or r._field == "version") and r._time <= 2024-03-01T12:00:00Z)`) {
			t.Errorf("%s: flux range is not 'at or before': %s", c.series, flux)
		}
		iql, err := EmbeddingInfluxQL("tsrep_embedding", c.series, at, "m", NewestVersion)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(iql, c.iql) || !strings.Contains(iql, `time <= '2024-03-01T12:00:00Z'`) {
			t.Errorf("%s: influxql\n%s\ndoes not contain\n%s", c.series, iql, c.iql)
		}
	}
}

func TestBuilderTimeBounds(t *testing.T) {
	from := time.Date(2024, 3, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
	to := time.Date(2024, 3, 2, 0, 0, 0, 500, time.UTC)
	f, err := ForecastsFlux("b", "tsrep_forecast", "cpu#u", from, to, "m")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f, "range(start: 2024-02-29T23:00:00Z, stop: 2024-03-02T00:00:00.0000005Z)") || !strings.Contains(f, `r.model == "m" and r._time < 2024-03-02T00:00:00.0000005Z)`) {
		t.Error(f)
	}
	f, _ = ImputedFlux("b", "tsrep_imputed", "cpu#u", time.Time{}, time.Time{}, "m")
	if !strings.Contains(f, "range(start: 0, stop: 2262-01-01T00:00:00Z)") || strings.Contains(f, "r._time") {
		t.Error(f)
	}
	q, _ := ForecastsInfluxQL("tsrep_forecast", "cpu#u", from, to, "m")
	if !strings.HasSuffix(q, `AND time >= '2024-02-29T23:00:00Z' AND time < '2024-03-02T00:00:00.0000005Z' GROUP BY *`) {
		t.Error(q)
	}
	q, _ = ImputedInfluxQL("tsrep_imputed", "cpu#u", time.Time{}, time.Time{}, "m")
	if strings.Contains(q, "time") {
		t.Error(q)
	}
	q = TrainLossesInfluxQL("tsrep_train", "m", from, time.Time{})
	if !strings.HasSuffix(q, `WHERE "model" = 'm' AND time >= '2024-02-29T23:00:00Z' GROUP BY "topic", "partition"`) {
		t.Error(q)
	}
}

func TestBuildersRejectBadInput(t *testing.T) {
	if _, err := EmbeddingFlux("b", "m", "no field", time.Time{}, "m", 0); err == nil || !strings.Contains(err.Error(), `series "no field"`) {
		t.Errorf("bad key: %v", err)
	}
	if _, err := ForecastsFlux("b", "m", "cpu#u", time.Time{}, time.Time{}, ""); err == nil || !strings.Contains(err.Error(), "model") {
		t.Errorf("empty model: %v", err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                            {},
		"now":                         now,
		"2024-01-02T03:04:05Z":        time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		"2024-01-02T03:04:05.5+01:00": time.Date(2024, 1, 2, 2, 4, 5, 5e8, time.UTC),
		"2024-01-02":                  time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
		"2024-01-02T03:04:05":         time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		"-24h":                        now.Add(-24 * time.Hour),
		"-7d":                         now.Add(-7 * 24 * time.Hour),
		"-1d12h":                      now.Add(-36 * time.Hour),
		"+30m":                        now.Add(30 * time.Minute),
		"-1w":                         now.Add(-7 * 24 * time.Hour),
		"-1.5h":                       now.Add(-90 * time.Minute),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "-", "-24", "24x", "2024-13-01", "-d"} {
		if _, err := ParseTime(in, now); err == nil {
			t.Errorf("ParseTime(%q) accepted", in)
		}
	}
}

// TestEmbeddingVersionText pins how a version is asked for in each
// language, 0 included (embeddings without a version field count as 0).
func TestEmbeddingVersionText(t *testing.T) {
	f, _ := EmbeddingFlux("b", "tsrep_embedding", "cpu#u", time.Time{}, "m", 4)
	for _, w := range []string{
		`|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> filter(fn: (r) => (if exists r.version then r.version else 0) == 4)`,
	} {
		if !strings.Contains(f, w) {
			t.Errorf("flux\n%s\nlacks\n%s", f, w)
		}
	}
	if f, _ := EmbeddingFlux("b", "tsrep_embedding", "cpu#u", time.Time{}, "m", NewestVersion); !strings.Contains(f, "|> last()\n") || strings.Contains(f, "r.version") {
		t.Errorf("newest: %s", f)
	}
	q, _ := EmbeddingInfluxQL("tsrep_embedding", "cpu#u", time.Time{}, "m", -2)
	if want := `SELECT /^(e[0-9]+|version)$/ FROM "tsrep_embedding" WHERE "field" = 'u' AND "measurement" = 'cpu' AND "model" = 'm' AND "version" = -2 GROUP BY * ORDER BY time DESC LIMIT 1`; q != want {
		t.Errorf("version -2:\n%s\nwant\n%s", q, want)
	}
	q = LatestEmbeddingsInfluxQL("tsrep_embedding", time.Time{}, "m", 0)
	want := `SELECT /^(e[0-9]+|version)$/ FROM "tsrep_embedding" WHERE "model" = 'm' AND "version" = 0 GROUP BY * ORDER BY time DESC LIMIT 1;
SELECT /^(e[0-9]+|version)$/ FROM "tsrep_embedding" WHERE "model" = 'm' GROUP BY * ORDER BY time DESC LIMIT 1;
SELECT "version" FROM "tsrep_embedding" WHERE "model" = 'm' GROUP BY * ORDER BY time ASC LIMIT 1`
	if q != want {
		t.Errorf("version 0:\n%s\nwant\n%s", q, want)
	}
}

func TestAnomalyAndListText(t *testing.T) {
	q, err := AnomaliesInfluxQL("tsrep_anomaly", `cpu,host=a'#u`, time.Time{}, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "m", 0.25)
	if want := `SELECT "score", "surprise", "z", "novelty" FROM "tsrep_anomaly" WHERE "field" = 'u' AND "host" = 'a\'' AND "measurement" = 'cpu' AND "model" = 'm' AND "score" >= 0.25 AND time < '2024-01-01T00:00:00Z' GROUP BY *`; err != nil || q != want {
		t.Errorf("%v\n%s\nwant\n%s", err, q, want)
	}
	f, _ := AnomaliesFlux("b", "tsrep_anomaly", "cpu#u", time.Time{}, time.Time{}, "m", 1)
	if !strings.HasSuffix(f, "\n  |> filter(fn: (r) => r.score >= 1.0)") {
		t.Error(f) // a float literal: Flux does not compare a float with 1
	}
	if _, err := AnomaliesInfluxQL("m", "cpu#u", time.Time{}, time.Time{}, "m", 2); err == nil {
		t.Error("min score 2 accepted")
	}
	l, err := SeriesListInfluxQL("tsrep_", "ssl", SeriesFilter{Measurement: "cpu", Tags: []ingest.KV{{Key: "model", Value: `x"y`}}})
	if want := `SELECT "predicted" FROM "tsrep_forecast" WHERE "measurement" = 'cpu' AND "model" = 'ssl' AND "tag_model" = 'x"y' GROUP BY * ORDER BY time DESC LIMIT 1`; err != nil || !strings.HasPrefix(l, want+";\n") {
		t.Errorf("%v\n%s\nwant prefix\n%s", err, l, want)
	}
	fl, _ := SeriesListFlux("b", "tsrep_", "ssl", SeriesFilter{Field: "f"})
	if !strings.Contains(fl, `(r._measurement == "tsrep_forecast" and r._field == "predicted") or (r._measurement == "tsrep_embedding" and r._field == "e0")`) ||
		!strings.Contains(fl, `) and r.field == "f" and r.model == "ssl")`) {
		t.Error(fl)
	}
	for _, bad := range []SeriesFilter{{Measurement: "a\nb"}, {Tags: []ingest.KV{{Key: "", Value: "x"}}}, {Tags: []ingest.KV{{Key: "h", Value: `x\`}}}} {
		if _, err := SeriesListInfluxQL("p", "m", bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, s := range []string{"cpu#u", `cpu,h=a\ b#u`, `cpu,h="'${x}|>;#u`, `cpu,h=C:\\x#u`} {
		if _, err := CanonicalSeries(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"cpu,h=a\nb#u", "cpu,h=a\rb#u", "cpu,h=\x7f#u", `cpu,h=a\\#u`, "cpu,h=\xff#u", "c\tpu#u"} {
		if _, err := CanonicalSeries(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if err := checkModel("a\nb"); err == nil {
		t.Error("model with a newline accepted")
	}
}
