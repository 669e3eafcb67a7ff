package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReferenceFile keeps config.toml honest: it parses, and every value in
// it is the default, so the file documents the defaults.
func TestReferenceFile(t *testing.T) {
	got, err := Load("../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config.toml differs from Default():\nfile    %+v\ndefault %+v", got, want)
	}
	// Every key of the file is commented.
	b, _ := os.ReadFile("../config.toml")
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.Contains(l, " = ") && !strings.HasPrefix(l, "#") {
			if i == 0 || !strings.HasPrefix(lines[i-1], "#") && !strings.Contains(lines[i-1], " = ") {
				t.Errorf("config.toml line %d %q has no comment above it", i+1, l)
			}
		}
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	f := func(toml, wantKey string) {
		t.Helper()
		_, err := Parse([]byte(toml), "test.toml")
		if err == nil || !strings.Contains(err.Error(), wantKey) {
			t.Errorf("%q: error %v does not name %s", toml, err, wantKey)
		}
	}
	f("[window]\nstride = 100", "window.stride")
	f("[window]\nlength = 2", "window.length")
	f("[window]\ninterval = \"soon\"", "window.interval")
	f("[window]\nseries_policy = \"random\"", "window.series_policy")
	f("[kafka]\nstart = \"yesterday\"", "kafka.start")
	f("[kafka]\nformat = \"xml\"", "kafka.format")
	f("[kafka]\nbrokers = []", "kafka.brokers")
	f("[model]\norder = 64", "model.order")
	f("[model]\nmerge = \"median\"", "model.merge")
	f("[influx]\nurl = \"localhost:8086\"", "influx.url")
	f("[log]\nlevel = \"loud\"", "log.level")
	f("[influx]\ngzip = \"sometimes\"", "influx.gzip")
	f("[influx]\ngzip = true", "gzip")
	f("[influx]\nmeasurement_prefix = \"a\\u0001\"", "influx.measurement_prefix")
	f("[kafka]\nbrokerz = [\"x\"]", "kafka.brokerz")
	f("[window]\nlength = \"long\"", "length")
	f("[kafka]\nmax_tags = 0", "kafka.max_tags")
	f("[kafka]\nmax_fields = 100000", "kafka.max_fields")
	f("[kafka]\nprecision_tolerance = \"-1h\"", "kafka.precision_tolerance")
	// 65536.5 intervals: ceil(lateness/interval) slots would not fit.
	f("[window]\ninterval = \"2s\"\nlateness = \"131073s\"", "window.lateness")
	if _, err := Parse([]byte("[window]\ninterval = \"2s\"\nlateness = \"131072s\""), "t"); err != nil {
		t.Errorf("65536 intervals of lateness: %v", err)
	}
}

// TestWarnings: SASL PLAIN without TLS is valid, with a warning; with TLS
// or SCRAM, no warning.
func TestWarnings(t *testing.T) {
	c := Default()
	c.Kafka.SASL = SASL{Mechanism: "plain", Username: "u", PasswordEnv: "P"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "clear text") || !strings.Contains(w[0], "kafka.tls") {
		t.Fatalf("warnings %q", w)
	}
	c.Kafka.TLS.Enabled = true
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("with TLS: %q", w)
	}
	c.Kafka.TLS.Enabled = false
	c.Kafka.SASL.Mechanism = "scram-sha-512"
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("SCRAM: %q", w)
	}
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`[window]
interval = "10s"
lateness = "30s"
[kafka]
start = "2024-01-02T15:04:05Z"`), "t")
	if err != nil {
		t.Fatal(err)
	}
	if c.Window.Interval.Duration != 10*time.Second || c.Window.Lateness.Duration != 30*time.Second {
		t.Fatalf("durations: %+v", c.Window)
	}
	k, ts, _ := ParseStart(c.Kafka.Start)
	if k != StartTime || !ts.Equal(time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC)) {
		t.Fatalf("start %v %v", k, ts)
	}
}

func TestGzipAuto(t *testing.T) {
	for _, c := range []struct {
		url, mode string
		want      bool
	}{
		{"http://127.0.0.1:8086", "auto", false},
		{"http://localhost:8086", "auto", false},
		{"http://[::1]:8086", "auto", false},
		{"http://127.0.0.2:8086", "", false},
		{"https://influx.example.com", "auto", true},
		{"http://10.0.0.7:8086", "auto", true},
		{"http://127.0.0.1:8086", "always", true},
		{"https://influx.example.com", "never", false},
	} {
		in := Influx{URL: c.url, Gzip: c.mode}
		if got, err := in.GzipOn(); err != nil || got != c.want {
			t.Errorf("%s with gzip %q: %v, %v; want %v", c.url, c.mode, got, err, c.want)
		}
	}
}
