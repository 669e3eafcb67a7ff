package pipeline

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCheckpointStore(t *testing.T) {
	s, err := NewCheckpointStore(t.TempDir(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load("t", 0); ok || err != nil {
		t.Fatalf("empty store: ok %v err %v", ok, err)
	}
	body := []byte("state of partition 0")
	if err := s.Save("t", 0, body); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("t", 0, append(body, '!')); err != nil { // replaces atomically
		t.Fatal(err)
	}
	got, ok, err := s.Load("t", 0)
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
	if _, _, err := s.Load("t", 1); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("foreign file: %v", err)
	}
}
