package models

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tsrep/tsrep/internal/binenc"
)

func trainedSSL(t *testing.T) *SSL {
	t.Helper()
	cfg := testSSLConfig(24)
	l := newSSL(t, cfg)
	runAll(t, l, ettWindows(t, 0, 60, cfg.Length, 1, 64, nil))
	return l
}

func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.state")
	a := trainedSSL(t)
	if err := SaveFile(path, a); err != nil {
		t.Fatal(err)
	}
	b := newSSL(t, testSSLConfig(24))
	if err := LoadFile(path, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(state(a), state(b)) {
		t.Fatal("loaded state differs from the saved one")
	}
	// The RLS forecaster goes through the same file format.
	f := NewForecaster(ForecasterConfig{Name: "ar", Order: 4, Forgetting: 0.99, MaxSeries: 16})
	if _, err := f.Step(ettWindows(t, 0, 30, 8, 1, 500, nil)[0]); err != nil {
		t.Fatal(err)
	}
	fp := filepath.Join(t.TempDir(), "ar.state")
	if err := SaveFile(fp, f); err != nil {
		t.Fatal(err)
	}
	g := NewForecaster(ForecasterConfig{Name: "ar", Order: 4, Forgetting: 0.99, MaxSeries: 16})
	if err := LoadFile(fp, g); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(state(f), state(g)) {
		t.Fatal("forecaster state differs after a file round trip")
	}
}

func TestStateFileRejects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.state")
	a := trainedSSL(t)
	if err := SaveFile(path, a); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	cases := []struct {
		name    string
		path    string
		learner Learner
		want    string
		is      error
	}{
		{"corrupt byte", write("flip", flipped), newSSL(t, testSSLConfig(24)), "checksum mismatch", binenc.ErrCorrupt},
		{"truncated", write("trunc", good[:len(good)-100]), newSSL(t, testSSLConfig(24)), "checksum mismatch", binenc.ErrCorrupt},
		{"foreign file", write("foreign", []byte("PK\x03\x04 this is a zip file, not a model")), newSSL(t, testSSLConfig(24)), "not a tsrep learner state file", ErrNotStateFile},
		{"empty file", write("empty", nil), newSSL(t, testSSLConfig(24)), "not a tsrep learner state file", ErrNotStateFile},
		{"other learner", path, NewForecaster(ForecasterConfig{Name: "ar", Order: 4, MaxSeries: 4}), `learner "ssl-test", not "ar"`, nil},
		{"other shape", path, func() Learner { c := testSSLConfig(24); c.Dim = 16; return newSSL(t, c) }(), "dim 8", nil},
		{"missing", filepath.Join(dir, "nope"), newSSL(t, testSSLConfig(24)), "no such file", nil},
	}
	for _, tc := range cases {
		err := LoadFile(tc.path, tc.learner)
		if err == nil {
			t.Errorf("%s: loaded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: error %q does not wrap %v", tc.name, err, tc.is)
		}
	}
	// A failed load leaves the learner as it was.
	b := trainedSSL(t)
	before := state(b)
	if err := LoadFile(filepath.Join(dir, "flip"), b); err == nil {
		t.Fatal("loaded a corrupt file")
	}
	if !bytes.Equal(before, state(b)) {
		t.Fatal("a failed load changed the learner")
	}
}
