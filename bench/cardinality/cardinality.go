// Package cardinality measures what each series costs: it drives many
// series through the pipeline's per-partition state (windowing, the
// configured learner, the forecast scorer and the output encoder, exactly
// as a partition holds them) and reports the retained heap per series and
// the process's peak RSS.
package cardinality

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tsrep/tsrep/bench/throughput"
	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/pipeline"
	"github.com/tsrep/tsrep/sinks"
	"github.com/tsrep/tsrep/windowing"
)

// Result is a run's figures.
type Result struct {
	Series        int     `json:"series"`
	Points        int64   `json:"points"`
	Windows       int64   `json:"windows"`
	Model         string  `json:"model"`
	Length        int     `json:"window_length"`
	HeapBytes     uint64  `json:"heap_bytes"` // retained after GC
	BytesPerSerie float64 `json:"bytes_per_series"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	Seconds       float64 `json:"seconds"`
	// Components: retained heap per series of each stage's state.
	Windowing, Learner, Scorer, Encoder float64
	// Restore, if measured: the partition's state (windows, learner,
	// outstanding forecasts) as a checkpoint body, saved to and restored
	// from the Kafka state store (pipeline.state_store = "kafka") on an
	// embedded broker.
	Restore *Restore `json:"restore,omitempty"`
}

// Restore is the cost of a partition's state in the Kafka state store.
type Restore struct {
	StateBytes int `json:"state_bytes"`
	// EncodeSeconds serialises the state; SaveSeconds writes it to the
	// state topic (chunks, then the manifest).
	EncodeSeconds float64 `json:"encode_seconds"`
	SaveSeconds   float64 `json:"save_seconds"`
	// LoadSeconds reads it back (a fresh store, as a new owner of the
	// partition does); DecodeSeconds rebuilds windowing, learner and
	// scorer from it. Their sum is what a rebalance or restart waits.
	LoadSeconds   float64 `json:"load_seconds"`
	DecodeSeconds float64 `json:"decode_seconds"`
}

// Run drives series through cfg's windowing and learner for steps points
// each (interleaved, one point per series per step). With restore it also
// measures saving the state to the Kafka state store and restoring it.
func Run(cfg config.Config, series, steps int, restore bool) (*Result, error) {
	t0 := time.Now()
	cfg.Window.MaxSeries = max(cfg.Window.MaxSeries, series)
	cfg.Window.IntervalText = "1s"
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	learner, err := pipeline.NewLearner(cfg)
	if err != nil {
		return nil, err
	}
	preq := models.NewPrequential(cfg.Window.MaxSeries)
	enc := sinks.NewEncoder(cfg.Influx.MeasurementPrefix, cfg.Window.MaxSeries)
	res := &Result{Series: series, Model: cfg.Model.Kind, Length: cfg.Window.Length}
	var stepErr error
	win := windowing.New(windowing.Config{
		Interval: cfg.Window.Interval.Duration, Length: cfg.Window.Length, Stride: cfg.Window.Stride,
		MinObserved: cfg.Window.MinObserved, BatchSize: cfg.Window.BatchSize, MaxSeries: cfg.Window.MaxSeries,
	}, memory.NewGoAllocator(), func(rec arrow.RecordBatch) {
		defer rec.Release()
		if stepErr != nil {
			return
		}
		out, err := learner.Step(rec)
		if err != nil {
			stepErr = err
			return
		}
		b, _ := models.View(rec)
		r := preq.Observe(&b, out)
		enc.Encode(&sinks.Result{Model: learner.Name(), Batch: &b, Out: out, Resolved: r})
		enc.Reset()
		res.Windows += int64(b.Rows)
	})
	defer func() { win.Close() }() // not defer win.Close(): that would pin this windower

	heap := func() uint64 {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	keys := make([][]byte, series)
	for s := range keys {
		keys[s] = []byte(fmt.Sprintf("host,dc=dc%d,host=h%06d#cpu", s%10, s))
	}
	keyBytes := heap() - base
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for step := 0; step < steps; step++ {
		ts := t + int64(step)*int64(time.Second)
		for s := 0; s < series; s++ {
			v := math.Sin(float64(step)/float64(10+s%40)) + float64(s%17)
			win.Add(keys[s], ts, v)
			res.Points++
		}
		if stepErr != nil {
			return nil, stepErr
		}
	}
	win.Flush()
	if stepErr != nil {
		return nil, stepErr
	}
	total := heap() - base - keyBytes
	// The checkpoint body is encoded while the state is live; the state is
	// then dropped (the per-component measurement below) before the body
	// goes to the broker and comes back, so that the process holds the
	// state's bytes at most three times (the body or the broker's copy, the
	// copy read back, the restored state) rather than five: 100,000 series
	// fit in this way on a 24 GB machine.
	var body []byte
	var enc0 time.Duration
	if restore {
		body, enc0 = encodeState(win, learner, preq)
	}
	res.HeapBytes = total
	res.BytesPerSerie = float64(total) / float64(series)
	// Per component: drop each stage's state in turn and see what is freed.
	measure := func(drop func()) float64 {
		before := heap()
		drop()
		return float64(int64(before)-int64(heap())) / float64(series)
	}
	res.Encoder = measure(func() { enc = nil })
	res.Scorer = measure(func() { preq = nil })
	res.Learner = measure(func() { learner = nil })
	res.Windowing = measure(func() {
		win.Close()
		win = windowing.New(windowing.Config{Interval: time.Second, Length: 4, Stride: 1, MinObserved: 1, BatchSize: 1, MaxSeries: 1}, nil, nil)
	})
	if restore {
		r, err := measureRestore(cfg, &body)
		if err != nil {
			return nil, err
		}
		r.EncodeSeconds = enc0.Seconds()
		res.Restore = r
	}
	res.PeakRSSBytes = throughput.PeakRSS()
	res.Seconds = time.Since(t0).Seconds()
	runtime.KeepAlive(keys)
	return res, nil
}

// encodeState writes the state as a checkpoint does and returns it with
// the time the encoding took.
func encodeState(win *windowing.Windower, learner models.Learner, preq *models.Prequential) ([]byte, time.Duration) {
	encode := func(size int) []byte {
		ww := binenc.Writer{B: make([]byte, 0, size)}
		win.AppendState(&ww)
		w := binenc.Writer{B: make([]byte, 0, size)}
		w.Bytes(ww.B)
		learner.AppendState(&w)
		preq.AppendState(&w)
		return w.B
	}
	// The pipeline sizes a checkpoint's buffer by the previous one: time
	// that steady state, not the first checkpoint's buffer growth.
	size := len(encode(0))
	runtime.GC()
	t0 := time.Now()
	body := encode(size + size/8)
	return body, time.Since(t0)
}

// measureRestore saves a checkpoint body to a Kafka state store on an
// embedded broker (and drops *body once it is there), then restores it
// into a fresh windower, learner and scorer.
func measureRestore(cfg config.Config, body *[]byte) (*Restore, error) {
	r := &Restore{StateBytes: len(*body)}
	b, err := broker.Start(broker.Options{Partitions: 1})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	kc := cfg.Kafka
	kc.Brokers = []string{b.Addr()}
	c, err := ingest.NewCluster(kc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	store, err := c.StateStore(ctx, "bench-state", 1)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := store.Save(ctx, "metrics", 0, *body); err != nil {
		return nil, err
	}
	r.SaveSeconds = time.Since(t0).Seconds()
	*body = nil
	runtime.GC()

	fresh, err := c.StateStore(ctx, "bench-state", 1)
	if err != nil {
		return nil, err
	}
	t0 = time.Now()
	got, ok, err := fresh.Load(ctx, "metrics", 0)
	if err != nil || !ok {
		return nil, fmt.Errorf("restore: found %v, %v", ok, err)
	}
	r.LoadSeconds = time.Since(t0).Seconds()
	runtime.GC()

	t0 = time.Now()
	rd := binenc.NewReader(got)
	win2 := windowing.New(windowing.Config{
		Interval: cfg.Window.Interval.Duration, Length: cfg.Window.Length, Stride: cfg.Window.Stride,
		MinObserved: cfg.Window.MinObserved, BatchSize: cfg.Window.BatchSize, MaxSeries: cfg.Window.MaxSeries,
	}, memory.NewGoAllocator(), func(rec arrow.RecordBatch) { rec.Release() })
	defer win2.Close()
	if err := win2.LoadState(binenc.NewReader(rd.Bytes(0))); err != nil {
		return nil, fmt.Errorf("restore windows: %w", err)
	}
	l2, err := pipeline.NewLearner(cfg)
	if err != nil {
		return nil, err
	}
	if err := l2.LoadState(rd); err != nil {
		return nil, fmt.Errorf("restore learner: %w", err)
	}
	if err := models.NewPrequential(cfg.Window.MaxSeries).LoadState(rd); err != nil {
		return nil, fmt.Errorf("restore scorer: %w", err)
	}
	r.DecodeSeconds = time.Since(t0).Seconds()
	return r, nil
}
