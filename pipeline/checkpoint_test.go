package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckpointStore(t *testing.T) {
	ctx := context.Background()
	s, err := NewDirStore(t.TempDir(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(ctx, "t", 0); ok || err != nil {
		t.Fatalf("empty store: ok %v err %v", ok, err)
	}
	body := []byte("state of partition 0")
	if err := s.Save(ctx, "t", 0, body); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "t", 0, append(body, '!')); err != nil { // replaces atomically
		t.Fatal(err)
	}
	got, ok, err := s.Load(ctx, "t", 0)
	if !ok || err != nil || !bytes.Equal(got, append(body, '!')) {
		t.Fatalf("load: %q %v %v", got, ok, err)
	}
	entries, _ := os.ReadDir(strings.TrimSuffix(s.Path("t", 0), "/t-0.ckpt"))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}

	// Every single-byte corruption and every truncation is detected.
	raw, _ := os.ReadFile(s.Path("t", 0))
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x5a
		if _, err := DecodeCheckpoint(bad); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	for n := 0; n < len(raw); n++ {
		if _, err := DecodeCheckpoint(raw[:n]); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	_ = os.WriteFile(s.Path("t", 1), []byte("hello"), 0o644)
	if _, _, err := s.Load(ctx, "t", 1); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("foreign file: %v", err)
	}
}

// TestDirStoreGroupStaysInside: kafka.group is a name, not a path (issue
// 13, item 8): "../../x" and friends stay inside checkpoint_dir.
func TestDirStoreGroupStaysInside(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ckpt")
	seen := map[string]string{}
	for _, g := range []string{"../../x", "..", ".", "", "a/b", `a\b`, "/abs", "ok-group.1", "a%2Fb", "a/../../b"} {
		s, err := NewDirStore(dir, g)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(context.Background(), "t", 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
		p := s.Path("t", 0)
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || strings.Count(rel, string(filepath.Separator)) != 1 {
			t.Fatalf("group %q: checkpoint at %s, outside %s", g, p, dir)
		}
		if other, ok := seen[filepath.Dir(p)]; ok {
			t.Fatalf("groups %q and %q share the folder %s", g, other, filepath.Dir(p))
		}
		seen[filepath.Dir(p)] = g
	}
	if s, _ := NewDirStore(dir, "tsrep"); filepath.Base(filepath.Dir(s.Path("t", 0))) != "tsrep" {
		t.Fatalf("a plain group name is kept as is: %s", s.Path("t", 0))
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Fatalf("files outside checkpoint_dir: %v", entries)
	}
}
