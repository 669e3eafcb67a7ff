package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/pipeline"
)

// checkOf returns the check whose What starts with prefix.
func checkOf(t *testing.T, checks []pipeline.Check, prefix string) pipeline.Check {
	t.Helper()
	for _, c := range checks {
		if strings.HasPrefix(c.What, prefix) {
			return c
		}
	}
	t.Fatalf("no %q check in %+v", prefix, checks)
	return pipeline.Check{}
}

// TestPreflight: --dry-run's checks create nothing (the checkpoint
// directory used to be created), check the nearest existing parent of a
// missing checkpoint directory instead, never print a password of
// influx.url, and warn about SASL PLAIN without TLS.
func TestPreflight(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	b := testenv.StartBroker(t, broker.Options{Partitions: 2, Topics: []string{"pre"}})
	in := testenv.StartInflux(t)
	cfg := testConfig(t, b.Addr(), "pre", in)
	root := t.TempDir()
	cfg.Pipeline.CheckpointDir = filepath.Join(root, "var", "checkpoints")
	const secret = "pw-in-the-url"
	cfg.Influx.URL = strings.Replace(in.URL, "http://", "http://admin:"+secret+"@", 1)

	checks := pipeline.Preflight(ctx, cfg, testLogger(t))
	for _, c := range checks {
		if c.Err != nil {
			t.Errorf("%s: %v", c.What, c.Err)
		}
		if strings.Contains(c.What+c.Note+c.Warning, secret) || c.Err != nil && strings.Contains(c.Err.Error(), secret) {
			t.Errorf("check %+v shows the URL's password", c)
		}
	}
	if c := checkOf(t, checks, "influxdb "); !strings.Contains(c.What, "admin:xxxxx@") {
		t.Errorf("influxdb check: %+v", c)
	}
	c := checkOf(t, checks, "checkpoint_dir ")
	if !strings.Contains(c.Note, "will be created") || !strings.Contains(c.Note, root) {
		t.Errorf("checkpoint_dir check: %+v", c)
	}
	if _, err := os.Stat(filepath.Join(root, "var")); !os.IsNotExist(err) {
		t.Fatalf("--dry-run created %s (stat: %v)", filepath.Join(root, "var"), err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("--dry-run left %v in %s", entries, root)
	}

	// An existing directory is checked in place.
	cfg.Pipeline.CheckpointDir = root
	if err := os.Mkdir(filepath.Join(root, cfg.Kafka.Group), 0o755); err != nil {
		t.Fatal(err)
	}
	if c := checkOf(t, pipeline.Preflight(ctx, cfg, testLogger(t)), "checkpoint_dir "); c.Err != nil || c.Note != "writable" {
		t.Errorf("existing checkpoint_dir: %+v", c)
	}
	// A parent that is a file fails, naming the key.
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Pipeline.CheckpointDir = filepath.Join(file, "sub")
	if c := checkOf(t, pipeline.Preflight(ctx, cfg, testLogger(t)), "checkpoint_dir "); c.Err == nil || !strings.Contains(c.Err.Error(), "pipeline.checkpoint_dir") {
		t.Errorf("checkpoint_dir under a file: %+v", c)
	}

	// SASL PLAIN without TLS: a warning (the broker has no SASL, so its
	// check fails; the warning is what matters here).
	t.Setenv("PREFLIGHT_PW", "x")
	cfg.Pipeline.CheckpointDir = root
	cfg.Kafka.SASL = config.SASL{Mechanism: "plain", Username: "u", PasswordEnv: "PREFLIGHT_PW"}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	found := false
	for _, c := range pipeline.Preflight(sctx, cfg, testLogger(t)) {
		if c.Warning != "" && strings.Contains(c.Warning, "clear text") {
			found = true
		}
	}
	if !found {
		t.Error("no warning for SASL PLAIN without TLS")
	}
}
