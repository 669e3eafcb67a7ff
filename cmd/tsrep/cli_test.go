package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// tsrep runs the whole command tree in process with args and returns its
// stdout and stderr.
func tsrep(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(testenv.Context(t, 2*time.Minute))
	return out.String(), errb.String(), err
}

// TestConfigCommand: `tsrep config` prints the repository's config.toml.
func TestConfigCommand(t *testing.T) {
	out, _, err := tsrep(t, "config")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatal("tsrep config differs from config.toml (run go generate ./config)")
	}
}

// TestRunDryRunEnvAndSet is issue #15's case at the command level: a file
// named by $TSREP_CONFIG with ${TSREP_BROKERS} in it, and --set
// kafka.group=x; `run --dry-run` checks the effective configuration
// against a real broker and influxd: the broker from the environment, the
// group from --set (it names the checkpoint directory), and a database
// that does not exist yet reported as one that will be created.
func TestRunDryRunEnvAndSet(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Partitions: 2, Topics: []string{"metrics"}})
	in := testenv.StartInflux(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tsrep.toml")
	file := `[kafka]
brokers = ["${TSREP_BROKERS}"]
group = "from-file"

[influx]
url = "${TSREP_TEST_INFLUX:-http://127.0.0.1:1}"
bucket = "${TSREP_TEST_BUCKET}"

[pipeline]
checkpoint_dir = "${TSREP_TEST_DIR}/checkpoints"

[log]
level = "warn"
`
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TSREP_CONFIG", path)
	t.Setenv("TSREP_BROKERS", b.Addr())
	t.Setenv("TSREP_TEST_INFLUX", in.URL)
	t.Setenv("TSREP_TEST_BUCKET", in.Database+"_fresh")
	t.Setenv("TSREP_TEST_DIR", dir)

	out, _, err := tsrep(t, "run", "--dry-run", "--set", "kafka.group=x")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"ok    " + path + ": configuration is valid\n",
		"ok    kafka " + b.Addr() + ": 1 brokers\n",
		"ok    topic metrics: 2 partitions\n",
		"ok    bucket " + in.Database + "_fresh: missing; will be created (influx.create_bucket = true)\n",
		"ok    checkpoint_dir " + filepath.Join(dir, "checkpoints", "x") + ": missing; will be created",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// --brokers and --influx-url win over the file and --set.
	t.Setenv("TSREP_BROKERS", "127.0.0.1:1")
	t.Setenv("TSREP_TEST_INFLUX", "http://127.0.0.1:1")
	out, _, err = tsrep(t, "run", "--dry-run", "--set", "kafka.brokers=127.0.0.1:2", "--brokers", b.Addr(), "--influx-url", in.URL)
	if err != nil || !strings.Contains(out, "ok    kafka "+b.Addr()+":") || !strings.Contains(out, "ok    influxdb "+in.URL+":") {
		t.Errorf("--brokers/--influx-url: %v\n%s", err, out)
	}

	// --config wins over $TSREP_CONFIG; an unknown --set key fails like
	// an unknown key in the file; an unset ${VAR} names itself.
	if _, _, err := tsrep(t, "run", "--dry-run", "--config", filepath.Join(dir, "nope.toml")); err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Errorf("--config over TSREP_CONFIG: %v", err)
	}
	if _, _, err := tsrep(t, "run", "--dry-run", "--set", "kafka.grup=x"); err == nil || !strings.Contains(err.Error(), "unknown key kafka.grup") {
		t.Errorf("unknown --set key: %v", err)
	}
	os.Unsetenv("TSREP_TEST_BUCKET")
	if _, _, err := tsrep(t, "run", "--dry-run"); err == nil || !strings.Contains(err.Error(), "tsrep.toml:7:") || !strings.Contains(err.Error(), "TSREP_TEST_BUCKET") {
		t.Errorf("unset variable: %v", err)
	}

	// Without --config, $TSREP_CONFIG or ./config.toml, run says how to get one.
	os.Unsetenv("TSREP_CONFIG")
	t.Chdir(t.TempDir())
	if _, _, err := tsrep(t, "run", "--dry-run"); err == nil || !strings.Contains(err.Error(), "tsrep config > config.toml") {
		t.Errorf("no config file: %v", err)
	}
}

// TestConnectionFlags: every command that connects to Kafka takes
// --brokers, every one that connects to InfluxDB --influx-url, and the
// commands that read the configuration take --config and --set, all with
// one meaning (configFlags).
func TestConnectionFlags(t *testing.T) {
	root := newRootCmd()
	find := func(path ...string) *cobra.Command {
		c, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f := func(flags []string, path ...string) {
		t.Helper()
		c := find(path...)
		for _, name := range flags {
			if c.Flags().Lookup(name) == nil && c.InheritedFlags().Lookup(name) == nil {
				t.Errorf("tsrep %s has no --%s", strings.Join(path, " "), name)
			}
		}
	}
	f([]string{"config", "set", "brokers", "influx-url"}, "run")
	f([]string{"config", "set", "brokers", "influx-url"}, "replay")
	f([]string{"config", "set", "influx-url"}, "demo") // its broker is embedded
	f([]string{"config", "set", "brokers"}, "produce")
	f([]string{"config", "influx-url"}, "bench", "throughput") // its broker is embedded
	f([]string{"config", "influx-url"}, "query", "similar")
	f([]string{"config", "influx-url"}, "report")
	// The shared flags say the same everywhere.
	for _, path := range [][]string{{"run"}, {"replay"}, {"demo"}, {"produce"}, {"query", "similar"}, {"report"}} {
		c := find(path...)
		for _, name := range []string{"set", "brokers", "influx-url"} {
			fl := c.Flags().Lookup(name)
			if fl == nil {
				fl = c.InheritedFlags().Lookup(name)
			}
			if fl == nil {
				continue
			}
			if want := find("run").Flags().Lookup(name).Usage; fl.Usage != want {
				t.Errorf("tsrep %s --%s: %q, run's: %q", strings.Join(path, " "), name, fl.Usage, want)
			}
		}
	}
}

// TestMeasurementName: produce and replay name a file's measurement as
// their help says.
func TestMeasurementName(t *testing.T) {
	if got := baseName("data/ETT/ETTh1.csv"); got != "etth1" {
		t.Errorf("baseName: %q", got)
	}
	m := regexp.MustCompile(`(\S+) gives (\S+)\)?$`).FindStringSubmatch(measurementDefault)
	if m == nil || baseName(m[1]) != strings.TrimSuffix(m[2], ")") {
		t.Errorf("the help %q disagrees with baseName", measurementDefault)
	}
	root := newRootCmd()
	for _, name := range []string{"produce", "replay"} {
		c, _, _ := root.Find([]string{name})
		if u := c.Flags().Lookup("measurement").Usage; !strings.Contains(u, measurementDefault) {
			t.Errorf("tsrep %s --measurement: %q", name, u)
		}
	}
}

// TestReplayEmptyRangeAndSummary: a range with no records warns and shows
// what the topic holds; a replay's summary counts the bad messages it
// dead-lettered.
func TestReplayEmptyRangeAndSummary(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	b := testenv.StartBroker(t, broker.Options{Partitions: 2})
	in := testenv.StartInflux(t)
	const topic = "replay-cli"
	t0 := time.Date(2016, 7, 1, 0, 0, 0, 0, time.UTC)
	var msgs []feed.Message
	for i := range 200 {
		tm := t0.Add(time.Duration(i) * time.Hour).UnixNano()
		msgs = append(msgs, feed.Message{Key: []byte("m,s=a"), Value: fmt.Appendf(nil, "m,s=a v=%d %d", i%17, tm), Time: tm})
	}
	msgs = append(msgs,
		feed.Message{Key: []byte("m,s=a"), Value: []byte("not line protocol at all"), Time: t0.Add(300 * time.Hour).UnixNano()},
		feed.Message{Key: []byte("m,s=a"), Value: []byte{}, Time: t0.Add(300 * time.Hour).UnixNano()},
	)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{b.Addr()}
	d, _ := ingest.NewDialer(cfg.Kafka)
	if err := feed.Produce(ctx, feed.ProduceOptions{Brokers: cfg.Kafka.Brokers, Dialer: d, Topic: topic, Partitions: 2}, msgs); err != nil {
		t.Fatal(err)
	}
	args := []string{"replay", "--config", filepath.Join(t.TempDir(), "none.toml"), "--brokers", b.Addr(), "--influx-url", in.URL,
		"--set", "kafka.topics=" + topic, "--set", "kafka.dead_letter_topic=" + topic + "-dlq", "--set", "influx.bucket=" + in.Database,
		"--set", "window.length=16", "--set", "window.stride=4", "--set", "model.order=8", "--set", "model.kind=rls",
		"--set", "pipeline.checkpoint_dir=" + t.TempDir(), "--set", "log.level=warn"}
	// --config names a missing file: an error (only the default may be missing).
	if _, _, err := tsrep(t, args...); err == nil || !strings.Contains(err.Error(), "none.toml") {
		t.Fatalf("missing --config file: %v", err)
	}
	cfgFile := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(cfgFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args[2] = cfgFile

	out, stderr, err := tsrep(t, append(args, "--from", "2030-01-01", "--to", "2030-02-01")...)
	if err != nil {
		t.Fatal(err)
	}
	wantWarn := "warning: no records of " + topic + " in [2030-01-01T00:00:00Z, 2030-02-01T00:00:00Z): nothing replayed\n" +
		"  topic " + topic + ": 202 records from 2016-07-01T00:00:00Z to 2016-07-13T12:00:00Z (2 partitions)\n"
	if stderr != wantWarn || out != "" {
		t.Errorf("empty range: stdout %q, stderr:\n%s\nwant:\n%s", out, stderr, wantWarn)
	}

	out, _, err = tsrep(t, append(args, "--from", "2016-07-01")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "replayed 202 messages (200 points) in ") ||
		!strings.Contains(out, "\nbad input: 2 (empty_message 1, syntax 1); dead-lettered to "+topic+"-dlq: 2\n") {
		t.Errorf("summary:\n%s", out)
	}
}

// TestVersion: `tsrep version` and `tsrep --version` print the version,
// the commit and the Go version, and tsrep_build_info carries them.
func TestVersion(t *testing.T) {
	out, _, err := tsrep(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	out2, _, err := tsrep(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	if out != out2 || !strings.HasPrefix(out, "tsrep ") || !strings.Contains(out, "\ngo         "+runtime.Version()) {
		t.Errorf("version:\n%s\n--version:\n%s", out, out2)
	}

	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tsrep/tsrep", Version: "v0.0.0-20261130122334-8111df8a1b2c+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "8111df8a1b2c3d4e5f60718293a4b5c6d7e8f901"}, {Key: "vcs.time", Value: "2026-11-30T12:23:34Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := buildInfoFrom(bi, true).String()
	want := "tsrep v0.0.0-20261130122334-8111df8a1b2c+dirty\n" +
		"commit     8111df8a1b2c3d4e5f60718293a4b5c6d7e8f901 (dirty: built with uncommitted changes)\n" +
		"committed  2026-11-30T12:23:34Z\n" +
		"go         go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := buildInfoFrom(nil, false); got.Version != "(devel)" || !strings.Contains(got.String(), "commit     unknown") {
		t.Errorf("no build info: %+v", got)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(newBuildInfoGauge())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "tsrep_build_info" || mfs[0].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("tsrep_build_info: %v %v", err, mfs)
	}
	labels := map[string]string{}
	for _, l := range mfs[0].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	b := readBuildInfo()
	if labels["version"] != b.Version || labels["goversion"] != b.GoVersion || labels["commit"] == "" || len(labels) != 3 {
		t.Errorf("labels %v", labels)
	}
}

// TestVersionBinary builds tsrep from the checkout and checks that `tsrep
// version` names its commit. -buildvcs=auto: a GOFLAGS=-buildvcs=false in
// the environment (as on the CI machines) would build without VCS
// information.
func TestVersionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := testenv.ModuleRoot()
	bin := filepath.Join(t.TempDir(), "tsrep")
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, "./cmd/tsrep")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		if !strings.Contains(string(out), "commit     unknown") {
			t.Errorf("not a git checkout, yet:\n%s", out)
		}
		return
	}
	if want := "commit     " + strings.TrimSpace(string(head)); !strings.Contains(string(out), want) {
		t.Errorf("tsrep version:\n%s\nwant %q", out, want)
	}
	dirty, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	if (len(bytes.TrimSpace(dirty)) > 0) != strings.Contains(string(out), "(dirty") {
		t.Errorf("tsrep version:\n%s\ngit status:\n%s", out, dirty)
	}
}
