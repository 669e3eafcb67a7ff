// Package throughput is tsrep's end-to-end speed benchmark: a topic on an
// embedded broker is preloaded with line-protocol points, then, on the same
// topic and in the same run, four processes consume it to the end and
// commit:
//
//	(a) a bare kafka-go consumer that fetches and discards: the ceiling
//	(b) tsrep with learning off: decode, window, write training counts
//	(c) tsrep in full: learning, forecasts, embeddings, the real InfluxDB sink
//	(d) (c) with kafka.repartition = "always": the repartition stage writes
//	    every point to the internal topic, then the learning pipeline reads
//	    it (with --until-end one after the other; a live service runs them
//	    side by side)
//
// Each is timed from its first partition assignment to its last commit and
// measured for CPU seconds and peak RSS (from the child's rusage); (b)/(a)
// and (c)/(a) are the figures of merit. A CPU profile of (c) is split into
// stages by call stack.
package throughput

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/pipeline"
)

// Options configure a run.
type Options struct {
	Points     int
	Series     int
	Partitions int
	// Data is a CSV whose columns are tiled over the series; empty
	// generates noisy sinusoids.
	Data string
	// Length, Stride: the windowing of (b) and (c).
	Length, Stride int
	// Model is the learner of (c) (model.kind), Dim its embedding size.
	Model string
	Dim   int
	// Config, if set, is the configuration (b) and (c) start from instead
	// of the defaults (the broker, topic, group, InfluxDB, windowing, model
	// kind and dim above still apply).
	Config string
	// InfluxURL is the InfluxDB (b) and (c) write to.
	InfluxURL string
	// Bin is the tsrep binary run as (a), (b), (c).
	Bin string
	// Dir holds configs, checkpoints and profiles.
	Dir string
	// CPUProfile and HeapProfile, if set, are written by (c).
	CPUProfile, HeapProfile string
	// InfluxdPID, if set, is the process id of an InfluxDB server on this
	// machine, whose CPU time during each phase is reported.
	InfluxdPID int
	Log        *slog.Logger
}

// Phase is one measured consumer.
type Phase struct {
	Name         string  `json:"name"`
	What         string  `json:"what"`
	Points       int64   `json:"points"`
	Seconds      float64 `json:"seconds"` // first assignment to last commit
	PointsPerSec float64 `json:"points_per_s"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	Wall         float64 `json:"wall_seconds"` // process start to exit
	// BrokerCPUSeconds is this process's CPU time while the phase ran
	// (process start to exit): the embedded broker serving it.
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds"`
	// InfluxdCPUSeconds is the InfluxDB server's over the same time, if
	// its process id was given (Options.InfluxdPID); else 0.
	InfluxdCPUSeconds float64 `json:"influxd_cpu_seconds,omitempty"`
	// RepartitionSeconds is, for (d), the part of Seconds the repartition
	// stage took to write the whole input to the internal topic.
	RepartitionSeconds float64 `json:"repartition_seconds,omitempty"`
}

// CoresBusy is the CPU time of the phase, the broker and the InfluxDB
// server (when known) per second of the phase's run.
func (p Phase) CoresBusy() float64 {
	return (p.CPUSeconds + p.BrokerCPUSeconds + p.InfluxdCPUSeconds) / p.Wall
}

// Result is a whole run.
type Result struct {
	Date       string  `json:"date"`
	Machine    string  `json:"machine"`
	Options    Options `json:"options"`
	ProduceSec float64 `json:"produce_seconds"`
	Phases     []Phase `json:"phases"`
	RatioB     float64 `json:"ratio_b_a"`
	RatioC     float64 `json:"ratio_c_a"`
	RatioD     float64 `json:"ratio_d_a"`
	// RatioE is (e)/(a), (c) without anomaly scores (0: not measured,
	// when (c) scores none).
	RatioE float64 `json:"ratio_e_a,omitempty"`
	Stages []Stage `json:"stages,omitempty"`
}

const topic = "bench"

// Run preloads the topic and measures the phases.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Series < 1 || o.Points < o.Series {
		return nil, fmt.Errorf("need at least one point per series (%d points, %d series)", o.Points, o.Series)
	}
	res := &Result{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Options: o}
	b, err := broker.Start(broker.Options{Partitions: o.Partitions, Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	t0 := time.Now()
	if err := preload(ctx, o, b.Addr()); err != nil {
		return nil, err
	}
	res.ProduceSec = time.Since(t0).Seconds()
	o.Log.Info("topic preloaded", "points", o.Points, "series", o.Series, "partitions", o.Partitions, "in", time.Since(t0).Round(time.Millisecond))

	outputs := "forecasts, embeddings" // what (c)'s learner writes
	if o.Model != "ssl" {
		outputs = "forecasts" // rls has no encoder
	}
	cBase, err := o.baseConfig()
	if err != nil {
		return nil, err
	}
	scored := cBase.Anomaly.Enabled && o.Model != "none"
	if scored {
		outputs += ", anomaly scores"
	}
	noAnomaly := func(c *config.Config) { c.Anomaly.Enabled = false }
	type phase struct {
		name, what string
		args       func() ([]string, *config.Config, error)
	}
	phases := []phase{
		{"a", "bare kafka-go consumer (fetch, discard, commit)", func() ([]string, *config.Config, error) {
			return []string{"bench", "consume", "--brokers", b.Addr(), "--topic", topic, "--group", "bench-a"}, nil, nil
		}},
		{"b", "tsrep, learning off (decode, window, Arrow, training counts to InfluxDB)", func() ([]string, *config.Config, error) {
			return o.runArgs(b.Addr(), "bench-b", "none", "", "off", nil)
		}},
		{"c", "tsrep in full (" + o.Model + " learner, " + outputs + ", InfluxDB)", func() ([]string, *config.Config, error) {
			return o.runArgs(b.Addr(), "bench-c", o.Model, o.CPUProfile, "off", nil)
		}},
		{"d", "(c) with kafka.repartition = always (repartition stage, then learning from the internal topic)", func() ([]string, *config.Config, error) {
			return o.runArgs(b.Addr(), "bench-d", o.Model, "", "always", nil)
		}},
	}
	if scored {
		phases = append(phases, phase{"e", "(c) without anomaly scores (anomaly.enabled = false): what the score costs", func() ([]string, *config.Config, error) {
			return o.runArgs(b.Addr(), "bench-e", o.Model, "", "off", noAnomaly)
		}})
	}
	for _, ph := range phases {
		args, cfg, err := ph.args()
		if err != nil {
			return nil, err
		}
		p, err := o.child(ctx, ph.name, args)
		if cfg != nil {
			// Each phase writes to a database of its own, dropped after it:
			// points left by earlier runs would make InfluxDB merge
			// overwritten points in its compactions, and cost it more.
			if derr := pipeline.DropBucket(ctx, *cfg, o.Log); err == nil && derr != nil {
				err = derr
			}
		}
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", ph.name, err)
		}
		p.What = ph.what
		p.Points = int64(o.Points)
		p.PointsPerSec = float64(o.Points) / p.Seconds
		res.Phases = append(res.Phases, p)
		o.Log.Info("phase done", "phase", ph.name, "points_per_s", int(p.PointsPerSec), "seconds", p.Seconds)
	}
	res.RatioB = res.Phases[1].PointsPerSec / res.Phases[0].PointsPerSec
	res.RatioC = res.Phases[2].PointsPerSec / res.Phases[0].PointsPerSec
	res.RatioD = res.Phases[3].PointsPerSec / res.Phases[0].PointsPerSec
	if len(res.Phases) > 4 {
		res.RatioE = res.Phases[4].PointsPerSec / res.Phases[0].PointsPerSec
	}
	if o.CPUProfile != "" {
		st, err := StageProfile(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		res.Stages = st
	}
	return res, nil
}

// baseConfig is the configuration (b) to (e) start from.
func (o Options) baseConfig() (config.Config, error) {
	if o.Config != "" {
		return config.Load(o.Config)
	}
	return config.Default(), nil
}

// runArgs writes the config of (b) to (e), changed by edit if not nil,
// and returns its command line.
func (o Options) runArgs(brokerAddr, group, kind, cpuProfile, repartition string, edit func(*config.Config)) ([]string, *config.Config, error) {
	c, err := o.baseConfig()
	if err != nil {
		return nil, nil, err
	}
	if edit != nil {
		edit(&c)
	}
	c.Kafka.Brokers = []string{brokerAddr}
	c.Kafka.Topics = []string{topic}
	c.Kafka.Group = group
	c.Kafka.DeadLetterTopic = topic + "-dlq"
	c.Kafka.Repartition = repartition
	c.Window.IntervalText = "1s"
	c.Window.Length, c.Window.Stride = o.Length, o.Stride
	c.Window.MaxSeries = max(c.Window.MaxSeries, o.Series)
	c.Model.Kind = kind
	c.Model.Name = kind
	c.Model.Dim = o.Dim
	c.Influx.URL = o.InfluxURL
	c.Influx.Bucket = fmt.Sprintf("tsrep_%s_%d", strings.ReplaceAll(group, "-", "_"), os.Getpid())
	c.Pipeline.CheckpointDir = filepath.Join(o.Dir, "checkpoints-"+group)
	c.HTTP.Listen = ""
	c.Log.Level = "warn"
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(o.Dir, group+".toml")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return nil, nil, err
	}
	args := []string{"run", "--until-end", "-c", path}
	if cpuProfile != "" {
		args = append(args, "--cpuprofile", cpuProfile)
		if o.HeapProfile != "" {
			args = append(args, "--memprofile", o.HeapProfile)
		}
	}
	return args, &c, nil
}

// child runs one phase and measures it.
func (o Options) child(ctx context.Context, name string, args []string) (Phase, error) {
	timing := filepath.Join(o.Dir, "timing-"+name+".json")
	args = append(args, "--timing-out", timing)
	cmd := exec.CommandContext(ctx, o.Bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	self0, influxd0 := selfCPU(), procCPU(o.InfluxdPID)
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return Phase{}, fmt.Errorf("%s %s: %w\n%s", o.Bin, strings.Join(args, " "), err, tailOf(out.String()))
	}
	p := Phase{Name: name, Wall: time.Since(t0).Seconds(), BrokerCPUSeconds: selfCPU() - self0}
	if o.InfluxdPID > 0 {
		p.InfluxdCPUSeconds = procCPU(o.InfluxdPID) - influxd0
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	p.CPUSeconds = tv(ru.Utime) + tv(ru.Stime)
	// Not ru.Maxrss: Go starts children with CLONE_VM|CLONE_VFORK, and at
	// exec Linux folds the shared (parent's) high-water mark into the
	// child's maxrss, charging it with this process (the broker and its
	// log). The child reports its own VmHWM instead.
	var tm struct{ FirstAssigned, LastCommit, PeakRSS int64 }
	b, err := os.ReadFile(timing)
	if err != nil {
		return Phase{}, err
	}
	if err := json.Unmarshal(b, &tm); err != nil {
		return Phase{}, err
	}
	if tm.FirstAssigned == 0 || tm.LastCommit <= tm.FirstAssigned {
		return Phase{}, fmt.Errorf("no timing (assigned %d, last commit %d):\n%s", tm.FirstAssigned, tm.LastCommit, tailOf(out.String()))
	}
	p.Seconds = float64(tm.LastCommit-tm.FirstAssigned) / 1e9
	p.PeakRSSBytes = tm.PeakRSS
	if m := stageDone.FindStringSubmatch(out.String()); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			p.RepartitionSeconds = d.Seconds()
		}
	}
	return p, nil
}

// stageDone is the log line of a --until-end run with repartitioning that
// says how long the repartition stage took (from the service's start).
var stageDone = regexp.MustCompile(`repartition stage caught up[^\n]*after=(\S+)`)

// selfCPU is this process's CPU time so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

// procCPU is the CPU time of process pid so far, in seconds (Linux
// /proc/<pid>/stat, in clock ticks of 1/100 s); 0 if unknown.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (ut + st) / 100
}

// PeakRSS is this process's peak resident set size (VmHWM) in bytes: the
// high-water mark of its own address space, unlike getrusage's maxrss,
// which after exec includes the parent's.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func tailOf(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}

// preload produces the points, in time order, one per message (as
// Telegraf's Kafka output sends them), keyed by series.
func preload(ctx context.Context, o Options, addr string) error {
	src, err := newSource(o)
	if err != nil {
		return err
	}
	d, _ := ingest.NewDialer(config.Default().Kafka)
	po := feed.ProduceOptions{Brokers: []string{addr}, Dialer: d, Topic: topic, Partitions: o.Partitions}
	const chunk = 100_000
	msgs := make([]feed.Message, 0, chunk)
	for i := 0; i < o.Points; i++ {
		msgs = append(msgs, src.message(i))
		if len(msgs) == chunk || i == o.Points-1 {
			if err := feed.Produce(ctx, po, msgs); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

// source makes point i: series i % S at step i / S.
type source struct {
	o     Options
	keys  [][]byte
	cols  [][]float64 // real data, tiled; nil for generated
	shift []int
	amp   []float64
	per   []float64
	rng   *rand.Rand
	t0    int64
	buf   []byte
}

func newSource(o Options) (*source, error) {
	s := &source{o: o, rng: rand.New(rand.NewPCG(7, 11)), t0: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	for i := 0; i < o.Series; i++ {
		s.keys = append(s.keys, []byte(fmt.Sprintf("bench,series=s%05d", i)))
		s.amp = append(s.amp, 1+float64(i%7))
		s.per = append(s.per, float64(24+i%50))
		s.shift = append(s.shift, (i*7919)%100000)
	}
	if o.Data != "" {
		fr, err := dataset.ReadCSV(o.Data, dataset.CSVOptions{})
		if err != nil {
			return nil, err
		}
		s.cols = fr.Cols
	}
	return s, nil
}

func (s *source) message(i int) feed.Message {
	series, step := i%s.o.Series, i/s.o.Series
	var v float64
	if s.cols != nil {
		c := s.cols[series%len(s.cols)]
		v = c[(step+s.shift[series])%len(c)]
		if math.IsNaN(v) {
			v = 0
		}
	} else {
		v = s.amp[series]*math.Sin(2*math.Pi*float64(step)/s.per[series]) + 0.1*s.rng.NormFloat64()
	}
	ts := s.t0 + int64(step)*int64(time.Second)
	s.buf = append(s.buf[:0], s.keys[series]...)
	s.buf = append(s.buf, " value="...)
	s.buf = strconv.AppendFloat(s.buf, v, 'g', 8, 64)
	s.buf = append(s.buf, ' ')
	s.buf = strconv.AppendInt(s.buf, ts, 10)
	return feed.Message{Key: s.keys[series], Value: bytes.Clone(s.buf), Time: ts}
}

// machine describes the host.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			mem = fmt.Sprintf(", %d GiB", (kb+(1<<19))>>20)
		}
	}
	return fmt.Sprintf("%s, %d CPUs%s, %s/%s, %s", model, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
