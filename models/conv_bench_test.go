package models

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// cpuSeconds is this process's CPU time so far (user and system). The
// benchmarks report per-CPU-second figures beside the wall-clock ones: on
// a machine shared with other jobs the wall clock counts the time the
// benchmark waited for a core.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// gemmCPUGFLOPs is gemmGFLOPs per CPU second.
func gemmCPUGFLOPs() float64 {
	const n = 512
	r := rand.New(rand.NewPCG(1, 1))
	a := blas64.General{Rows: n, Cols: n, Stride: n, Data: randSlice(r, n*n, 1)}
	bb := blas64.General{Rows: n, Cols: n, Stride: n, Data: randSlice(r, n*n, 1)}
	c := blas64.General{Rows: n, Cols: n, Stride: n, Data: make([]float64, n*n)}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, a, bb, 0, c)
	reps, c0, t0 := 0, cpuSeconds(), time.Now()
	for time.Since(t0) < 500*time.Millisecond || reps < 3 {
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, a, bb, 0, c)
		reps++
	}
	return 2 * n * n * n * float64(reps) / (cpuSeconds() - c0) / 1e9
}

// convStep is one contextual-consistency training step of the conv
// encoder as a learner would run it (without the optimiser): two
// overlapping crops of each of N windows, a binomial timestamp mask per
// view, the forward passes, the hierarchical loss on the shared steps and
// the backward passes.
type convStep struct {
	e      *convEncoder
	p, g   []float64
	h      *hierLoss
	rng    *rand.Rand
	x      matrix // In×N·T
	T, N   int
	crop   cropPair
	v1, v2 []float64
	k1, k2 []bool
	a1, a2 convEncAct
	g1, g2 []float64
	flops  float64 // of the last step's products
}

func newConvStep(t testing.TB, cfg convEncoderConfig, hc hierLossConfig, N, T int) *convStep {
	e, p, g := testConvEncoder(t, cfg, 1)
	h, err := newHierLoss(hc)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	s := &convStep{e: e, p: p, g: g, h: h, rng: r, T: T, N: N}
	s.x = newMat(cfg.In, N*T, randSlice(r, cfg.In*N*T, 1))
	// Size every workspace for the longest crops (the whole windows), so
	// that no later step grows one.
	s.crop.Len1, s.crop.Len2, s.crop.Overlap = T, T, T
	s.crop.Start1, s.crop.Start2 = make([]int, N), make([]int, N)
	s.run()
	return s
}

// step draws the crops and masks and runs the step; it returns the loss.
func (s *convStep) step() float64 {
	s.crop.sample(s.rng, s.T, s.N, 2)
	return s.run()
}

func (s *convStep) run() float64 {
	e, c, N := s.e, &s.crop, s.N
	C, D := e.cfg.In, e.cfg.Out
	s.v1 = grow(s.v1, C*N*c.Len1)
	s.v2 = grow(s.v2, C*N*c.Len2)
	X1, X2 := newMat(C, N*c.Len1, s.v1), newMat(C, N*c.Len2, s.v2)
	cropCols(s.x, s.T, c.Start1, c.Len1, X1)
	cropCols(s.x, s.T, c.Start2, c.Len2, X2)
	s.k1 = growBool(s.k1, N*c.Len1)
	s.k2 = growBool(s.k2, N*c.Len2)
	drawKeep(s.rng, s.k1, 0.5)
	drawKeep(s.rng, s.k2, 0.5)
	R1 := e.forward(X1, c.Len1, s.k1, &s.a1)
	R2 := e.forward(X2, c.Len2, s.k2, &s.a2)
	s.g1 = grow(s.g1, D*N*c.Len1)
	s.g2 = grow(s.g2, D*N*c.Len2)
	clear(s.g1)
	clear(s.g2)
	G1, G2 := newMat(D, N*c.Len1, s.g1), newMat(D, N*c.Len2, s.g2)
	clear(s.g)
	l := s.h.loss(R1, c.span1(), R2, c.span2(), 1, G1, G2)
	e.backward(&s.a1, G1)
	e.backward(&s.a2, G2)
	s.flops = e.flops(N*c.Len1, c.Len1) + e.flops(N*c.Len2, c.Len2) +
		e.backwardFlops(N*c.Len1, c.Len1) + e.backwardFlops(N*c.Len2, c.Len2) +
		hierFlops(N, c.Overlap, D, s.h.cfg)
	return l
}

// TestConvAllocs: in steady state the training step (crops, masks,
// forward, hierarchical and pooled losses, backward) and the inference
// passes allocate nothing.
func TestConvAllocs(t *testing.T) {
	cfg := convEncoderConfig{In: 1, Hidden: 8, Out: 4, Blocks: 3, Kernel: 3, ProjectLast: true}
	s := newConvStep(t, cfg, hierLossConfig{Alpha: 0.5}, 6, 40) // several tiles
	var nce pooledNCE
	stepAndNCE := func() {
		s.step()
		c := &s.crop
		nce.loss(newMat(4, s.N*c.Len1, s.a1.y[2]), span{T: c.Len1, Len: c.Len1},
			newMat(4, s.N*c.Len2, s.a2.y[2]), span{T: c.Len2, Len: c.Len2}, 0.2, 1,
			newMat(4, s.N*c.Len1, s.g1), newMat(4, s.N*c.Len2, s.g2))
	}
	stepAndNCE()
	if a := testing.AllocsPerRun(20, stepAndNCE); a != 0 {
		t.Fatalf("training step: %v allocations per run", a)
	}
	var w convEncWork
	out := newMat(4, s.N*s.T, make([]float64, 4*s.N*s.T))
	emb := newMat(4, s.N, make([]float64, 4*s.N))
	s.e.infer(s.x, s.T, nil, out, &w)
	s.e.embed(s.x, s.T, nil, emb, &w)
	if a := testing.AllocsPerRun(10, func() {
		s.e.infer(s.x, s.T, nil, out, &w)
		s.e.embed(s.x, s.T, nil, emb, &w)
	}); a != 0 {
		t.Fatalf("inference: %v allocations per run", a)
	}
}

// convBenchSizes are the encoder sizes benchmarked: hidden width and
// blocks, with Out 32 (the deployed dim) and one input channel.
var convBenchSizes = []struct{ H, K int }{{16, 4}, {16, 6}, {32, 4}, {32, 6}, {64, 4}, {64, 6}}

// BenchmarkConvEncoderEmbed measures the inference pass that gives window
// embeddings (encoder and max-pooling) on a block of 128 windows of 64
// steps, per window, and the GFLOP/s of its products.
func BenchmarkConvEncoderEmbed(b *testing.B) {
	const N, T = 128, 64
	for _, sz := range convBenchSizes {
		b.Run(fmt.Sprintf("blas=%s/H=%d/blocks=%d", BLAS, sz.H, sz.K), func(b *testing.B) {
			cfg := convEncoderConfig{In: 1, Hidden: sz.H, Out: 32, Blocks: sz.K, Kernel: 3, ProjectLast: true}
			e, _, _ := testConvEncoder(b, cfg, 1)
			r := rand.New(rand.NewPCG(4, 5))
			x := newMat(1, N*T, randSlice(r, N*T, 1))
			emb := newMat(cfg.Out, N, make([]float64, cfg.Out*N))
			var w convEncWork
			e.embed(x, T, nil, emb, &w)
			b.ReportAllocs()
			var cpu float64
			for b.Loop() {
				c0 := cpuSeconds()
				e.embed(x, T, nil, emb, &w)
				cpu += cpuSeconds() - c0
			}
			sec, cpu := b.Elapsed().Seconds()/float64(b.N), cpu/float64(b.N)
			b.ReportMetric(sec/N*1e6, "µs/window")
			b.ReportMetric(cpu/N*1e6, "cpu-µs/window")
			b.ReportMetric(e.flops(N*T, T)/sec/1e9, "GFLOP/s")
			b.ReportMetric(e.flops(N*T, T)/cpu/1e9, "cpu-GFLOP/s")
		})
	}
}

// BenchmarkConvTrainStep measures a contextual-consistency training step
// (see convStep) on 128 windows of 64 steps: windows learnt per second,
// the GFLOP/s of the step's products (counted for the crops drawn), and
// the GFLOP/s a large Gemm reaches in the same run (gemmGFLOPs), so that
// their ratio shows.
func BenchmarkConvTrainStep(b *testing.B) {
	const N, T = 128, 64
	for _, sz := range convBenchSizes {
		b.Run(fmt.Sprintf("blas=%s/H=%d/blocks=%d", BLAS, sz.H, sz.K), func(b *testing.B) {
			cfg := convEncoderConfig{In: 1, Hidden: sz.H, Out: 32, Blocks: sz.K, Kernel: 3, ProjectLast: true}
			s := newConvStep(b, cfg, hierLossConfig{Alpha: 0.5}, N, T)
			gemm, gemmCPU := gemmGFLOPs(b), gemmCPUGFLOPs()
			b.ReportAllocs()
			var flops, cpu float64
			for b.Loop() {
				c0 := cpuSeconds()
				s.step()
				cpu += cpuSeconds() - c0
				flops += s.flops
			}
			sec := b.Elapsed().Seconds()
			gf, cgf := flops/sec/1e9, flops/cpu/1e9
			b.ReportMetric(float64(N*b.N)/sec, "windows/s")
			b.ReportMetric(cpu/float64(N*b.N)*1e6, "cpu-µs/window")
			b.ReportMetric(gf, "GFLOP/s")
			b.ReportMetric(cgf, "cpu-GFLOP/s")
			b.ReportMetric(gemm, "gemm512-GFLOP/s")
			b.ReportMetric(gemmCPU, "gemm512-cpu-GFLOP/s")
			b.ReportMetric(cgf/gemmCPU, "of-gemm")
		})
	}
}

// BenchmarkHierLoss measures the hierarchical loss and its gradient alone
// on 128 windows of 64 shared steps, D = 32, with each similarity.
func BenchmarkHierLoss(b *testing.B) {
	const N, L, D = 128, 64, 32
	for _, cosine := range []bool{false, true} {
		b.Run(fmt.Sprintf("blas=%s/cosine=%v", BLAS, cosine), func(b *testing.B) {
			cfg := hierLossConfig{Alpha: 0.5, Cosine: cosine, Tau: 0.2}
			h, _ := newHierLoss(cfg)
			r := rand.New(rand.NewPCG(6, 7))
			z1 := newMat(D, N*L, randSlice(r, D*N*L, 1))
			z2 := newMat(D, N*L, randSlice(r, D*N*L, 1))
			g1 := newMat(D, N*L, make([]float64, D*N*L))
			g2 := newMat(D, N*L, make([]float64, D*N*L))
			s := span{T: L, Len: L}
			h.loss(z1, s, z2, s, 1, g1, g2)
			b.ReportAllocs()
			var cpu float64
			for b.Loop() {
				c0 := cpuSeconds()
				h.loss(z1, s, z2, s, 1, g1, g2)
				cpu += cpuSeconds() - c0
			}
			b.ReportMetric(cpu/float64(b.N)*1e3, "cpu-ms/op")
			b.ReportMetric(hierFlops(N, L, D, cfg)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(hierFlops(N, L, D, cfg)*float64(b.N)/cpu/1e9, "cpu-GFLOP/s")
		})
	}
}
