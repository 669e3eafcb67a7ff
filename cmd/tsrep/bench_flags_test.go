package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

// TestBenchConfigFlag: --config takes the learner's settings from the
// file, and flags given on the command line still override them.
func TestBenchConfigFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("[model]\ntrain_batch = 64\ndim = 48\nmerge = \"sum\"\n[window]\nlength = 48\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mf modelFlags
	cmd := &cobra.Command{}
	mf.bind(cmd, 1)
	if err := cmd.ParseFlags([]string{"--config", path, "--dim", "16"}); err != nil {
		t.Fatal(err)
	}
	c, cfg, err := mf.common(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.TrainBatch != 64 || c.Model.Length != 48 || cfg.Model.Merge != "sum" {
		t.Errorf("train batch %d, length %d, merge %q: the file's settings were not taken", c.Model.TrainBatch, c.Model.Length, cfg.Model.Merge)
	}
	if c.Model.Dim != 16 {
		t.Errorf("dim %d: the command line's --dim 16 did not override the file", c.Model.Dim)
	}
}
