package query

import (
	"strings"
	"testing"
	"time"
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
		flux, err := EmbeddingFlux("db", "tsrep_embedding", c.series, at, "m")
		if err != nil {
			t.Fatalf("%s: %v", c.series, err)
		}
		if !strings.Contains(flux, c.flux) {
			t.Errorf("%s: flux\n%s\ndoes not contain\n%s", c.series, flux, c.flux)
		}
		if !strings.Contains(flux, "range(start: 0, stop: 2024-03-01T12:00:00.000000001Z)") || !strings.Contains(flux, c.flux+" and r._time <= 2024-03-01T12:00:00Z)") {
			t.Errorf("%s: flux range is not 'at or before': %s", c.series, flux)
		}
		iql, err := EmbeddingInfluxQL("tsrep_embedding", c.series, at, "m")
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
	if _, err := EmbeddingFlux("b", "m", "no field", time.Time{}, "m"); err == nil || !strings.Contains(err.Error(), `series "no field"`) {
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
