package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tsrep/tsrep/internal/testenv"
)

// TestWithInfluxdKeep: `make demo` runs scripts/with-influxd.sh --keep,
// which leaves the influxd it started running (the README's queries after
// `make demo` read from it) and says how to stop it; without --keep the
// script stops it.
func TestWithInfluxdKeep(t *testing.T) {
	if _, err := os.Stat(testenv.InfluxdPath()); err != nil {
		t.Skipf("no influxd: %v", err)
	}
	root := testenv.ModuleRoot()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := append(os.Environ(), "TSREP_INFLUX_PORT="+strconv.Itoa(port), "TSREP_INFLUX_DIR="+dir, "TSREP_INFLUXD="+testenv.InfluxdPath())
	script := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, args[0]), args[1:]...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	up := func() bool {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	t.Cleanup(func() { script("scripts/influxd.sh", "stop") })

	out := script("scripts/with-influxd.sh", "--keep", "sh", "-c", `echo "url=$TSREP_INFLUX_URL"`)
	if !strings.Contains(out, "url="+url) || !strings.Contains(out, "make influxd-stop") {
		t.Errorf("with-influxd.sh --keep said:\n%s", out)
	}
	if !up() {
		t.Fatal("--keep: influxd is not running after the command")
	}
	script("scripts/influxd.sh", "stop")
	if up() {
		t.Fatal("influxd.sh stop left it running")
	}

	script("scripts/with-influxd.sh", "true")
	if up() {
		t.Error("without --keep, influxd still runs after the command")
	}
}
