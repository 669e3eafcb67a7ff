// Package testenv gives tests the real services: an influxd 1.8.10 process
// (one per test binary, a fresh database per test) and an in-process
// Kafka-protocol broker on loopback TCP. Nothing is mocked.
//
// influxd is taken from $TSREP_INFLUXD, else <module root>/.tools/bin/influxd,
// which `make test` installs (scripts/influxd.sh install).
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tsrep/tsrep/internal/broker"
)

// Main runs the tests and stops the influxd they started. Use it from
// TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	stopInflux()
	os.Exit(code)
}

var (
	influxOnce sync.Once
	influxURL  string
	influxErr  error
	influxCmd  *exec.Cmd
	influxDone chan error // receives the process's exit
	influxDir  string
	dbSeq      int
	dbMu       sync.Mutex
)

// ModuleRoot is the directory holding go.mod.
func ModuleRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// InfluxdPath is the influxd binary tests use.
func InfluxdPath() string {
	if p := os.Getenv("TSREP_INFLUXD"); p != "" {
		return p
	}
	return filepath.Join(ModuleRoot(), ".tools", "bin", "influxd")
}

// Influx is a database on the shared test influxd.
type Influx struct {
	URL      string
	Database string
}

// StartInflux returns a fresh database on the test binary's influxd,
// starting the server on first use. The bucket of the v2 API is Database.
func StartInflux(t testing.TB) Influx {
	t.Helper()
	influxOnce.Do(func() { influxURL, influxErr = startInflux() })
	if influxErr != nil {
		t.Fatalf("influxd: %v", influxErr)
	}
	dbMu.Lock()
	dbSeq++
	db := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq)
	dbMu.Unlock()
	if err := influxQL(influxURL, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return Influx{URL: influxURL, Database: db}
}

// InfluxURL is the URL of the shared influxd, starting it if needed.
func InfluxURL(t testing.TB) string {
	t.Helper()
	return StartInflux(t).URL
}

// StopInflux stops the shared influxd (for outage tests); RestartInflux
// brings it back on the same port and data directory.
func StopInflux(t testing.TB) {
	t.Helper()
	killInflux()
}

func killInflux() {
	if influxCmd != nil {
		_ = influxCmd.Process.Kill()
		<-influxDone
		influxCmd = nil
	}
}

// RestartInflux starts the shared influxd again after StopInflux.
func RestartInflux(t testing.TB) {
	t.Helper()
	if err := launchInflux(); err != nil {
		t.Fatalf("restart influxd: %v", err)
	}
}

func stopInflux() {
	killInflux()
	if influxDir != "" {
		_ = os.RemoveAll(influxDir)
	}
}

var influxPort, influxRPCPort int

func startInflux() (string, error) {
	bin := InfluxdPath()
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s not found: run `make test` (it installs influxd v1.8.10 with scripts/influxd.sh install) or set TSREP_INFLUXD", bin)
	}
	dir, err := os.MkdirTemp("", "tsrep-influxd-")
	if err != nil {
		return "", err
	}
	influxDir = dir
	if influxPort, err = FreePort(); err != nil {
		return "", err
	}
	if influxRPCPort, err = FreePort(); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
  wal-fsync-delay = "0s"
[http]
  bind-address = "127.0.0.1:%d"
  flux-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
[logging]
  level = "warn"
`, influxRPCPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), influxPort)
	if err := os.WriteFile(filepath.Join(dir, "influxdb.conf"), []byte(conf), 0o644); err != nil {
		return "", err
	}
	if err := launchInflux(); err != nil {
		return "", err
	}
	return fmt.Sprintf("http://127.0.0.1:%d", influxPort), nil
}

func launchInflux() error {
	log, err := os.OpenFile(filepath.Join(influxDir, "influxd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(InfluxdPath(), "-config", filepath.Join(influxDir, "influxdb.conf"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	influxCmd = cmd
	exited := make(chan error, 1)
	influxDone = exited
	go func() { exited <- cmd.Wait(); log.Close() }()
	u := fmt.Sprintf("http://127.0.0.1:%d/health", influxPort)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			influxCmd = nil
			b, _ := os.ReadFile(filepath.Join(influxDir, "influxd.log"))
			return fmt.Errorf("influxd exited (%v): %s", err, tail(string(b), 2000))
		default:
		}
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	killInflux()
	return fmt.Errorf("influxd did not answer %s within 60s", u)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func influxQL(base, q string) error {
	resp, err := http.PostForm(base+"/query", url.Values{"q": {q}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", q, resp.Status)
	}
	return nil
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartBroker starts a Kafka-protocol broker on loopback TCP, closed when
// the test ends.
func StartBroker(t testing.TB, o broker.Options) *broker.Broker {
	t.Helper()
	b, err := broker.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Context is a test context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// DataFile returns the path of a bundled data file (under data/).
func DataFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(ModuleRoot(), "data", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("bundled data %s: %v", rel, err)
	}
	return p
}

// Sanitize turns a test name into something usable as a topic or group.
func Sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '-'
	}, name)
}

// StartAuthInflux starts an influxd of the test's own with authentication
// enabled and an admin user, stopped when the test ends. It returns the URL
// and the admin's "user:password".
func StartAuthInflux(t testing.TB) (url, userPass string) {
	t.Helper()
	dir := t.TempDir()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	rpc, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  flux-enabled = true
  auth-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
[logging]
  level = "warn"
`, rpc, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), port)
	cfgPath := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(InfluxdPath(), "-config", cfgPath)
	logf, _ := os.Create(filepath.Join(dir, "influxd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	url = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("authenticated influxd did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// With no user yet, 1.8 allows creating the first admin.
	if err := influxQL(url, "CREATE USER admin WITH PASSWORD 'adm1n-s3cret' WITH ALL PRIVILEGES"); err != nil {
		t.Fatal(err)
	}
	return url, "admin:adm1n-s3cret"
}
