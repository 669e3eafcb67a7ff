package pipeline

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/sinks"
)

var writeSeeds = flag.Bool("write-seeds", false, "write the checkpoint fuzz seeds to testdata/fuzz")

type discard struct{}

func (discard) Write(context.Context, []byte) ([]sinks.Rejected, error) { return nil, nil }

// fuzzPartition is a partition with the default configuration, not
// connected to anything.
func fuzzPartition(t testing.TB) *partition {
	return fuzzPipeline(t).fresh(t)
}

type fuzzPipe struct{ p *Pipeline }

func (f fuzzPipe) fresh(t testing.TB) *partition {
	pt, err := f.p.newPartition(partitionID{"t", 0}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func fuzzPipeline(t testing.TB) fuzzPipe {
	cfg := config.Default()
	cfg.Window.MaxSeries = 50
	cfg.Model.TrainBatch = 16
	cfg.Model.Dim, cfg.Model.Hidden, cfg.Model.Order = 4, 8, 4
	cfg.Window.Length, cfg.Window.Stride = 16, 4
	cfg.Pipeline.CheckpointDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Config: cfg, Sink: discard{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return fuzzPipe{p}
}

// seedCheckpoint is a real checkpoint body: a partition fed n points of a
// few series, its windows learnt from.
func seedCheckpoint(t testing.TB, n int) []byte {
	pt := fuzzPartition(t)
	defer pt.close()
	pt.win.msg = &ingest.Message{Topic: "t"}
	for i := 0; i < n; i++ {
		ts := time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC).UnixNano()
		line := fmt.Sprintf("m,s=%d v=%d,w=%d %d", i%3, i%11, i%5, ts)
		pt.win.dec.Decode([]byte(line), ts, pt.win)
	}
	pt.win.win.Flush()
	var w binenc.Writer
	pt.win.win.AppendState(&w)
	windows := w.B
	var body binenc.Writer
	// learn from whatever batches the windower emitted
	for {
		select {
		case it := <-pt.items:
			if it.rec != nil {
				if _, err := pt.learn.learner.Step(it.rec); err != nil {
					t.Fatal(err)
				}
				it.rec.Release()
			}
			continue
		default:
		}
		break
	}
	pt.learn.appendCheckpoint(&body, windows, int64(n))
	return body.B
}

// FuzzCheckpointBody: a checkpoint body of any content is either restored
// or refused with an error; it never panics or allocates without bound.
func FuzzCheckpointBody(f *testing.F) {
	for _, n := range []int{0, 3, 40, 200} {
		f.Add(seedCheckpoint(f, n))
	}
	fp := fuzzPipeline(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		pt := fp.fresh(t)
		defer pt.close()
		_, _ = pt.learn.loadCheckpoint(body, pt.win)
	})
}

// FuzzCheckpointFile: the file framing (magic, version, length, CRC)
// refuses anything it did not write.
func FuzzCheckpointFile(f *testing.F) {
	dir := f.TempDir()
	s, err := NewDirStore(dir, "g")
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Save(context.Background(), "t", 0, seedCheckpoint(f, 40)); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(s.Path("t", 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	fp := fuzzPipeline(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := DecodeCheckpoint(b)
		if err == nil {
			pt := fp.fresh(t)
			defer pt.close()
			_, _ = pt.learn.loadCheckpoint(body, pt.win)
		}
	})
}

// TestCheckpointSeedsRestore checks the seeds are valid checkpoints (so the
// fuzzers start from real states), and writes them to testdata/fuzz with
// -write-seeds.
func TestCheckpointSeedsRestore(t *testing.T) {
	for _, n := range []int{0, 3, 40, 200} {
		body := seedCheckpoint(t, n)
		pt := fuzzPartition(t)
		next, err := pt.learn.loadCheckpoint(body, pt.win)
		pt.close()
		if err != nil || next != int64(n) {
			t.Fatalf("seed of %d points: next %d, err %v", n, next, err)
		}
		if *writeSeeds {
			dir := filepath.Join("testdata", "fuzz", "FuzzCheckpointBody")
			_ = os.MkdirAll(dir, 0o755)
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", body)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", n)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
