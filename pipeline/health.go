package pipeline

import (
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/clock"
)

// partitionID names a topic-partition.
type partitionID struct {
	topic string
	part  int
}

func (id partitionID) labels() []string { return []string{id.topic, strconv.Itoa(id.part)} }

func (id partitionID) String() string { return id.topic + "/" + strconv.Itoa(id.part) }

// stageEnv is what every stage of every partition shares: configuration,
// metrics, health, clock. Read-only after construction.
type stageEnv struct {
	cfg       config.Config
	m         *Metrics
	health    *Health
	clock     clock.Clock
	progress  *Progress
	timing    *Timing
	extraTags []ingest.KV
	baseLog   *slog.Logger
	// onFinal, if set, is called when a partition has written everything
	// up to the end it was to read.
	onFinal func(partitionID)
}

func (e *stageEnv) log(id partitionID) *slog.Logger {
	return e.baseLog.With("topic", id.topic, "partition", id.part)
}

// partState is what a partition is doing, as tsrep_partition_state and
// /readyz report it.
type partState string

const (
	// stateRunning: consuming, learning and writing.
	stateRunning partState = "running"
	// stateRetrying: a durable step (a checkpoint, dead letters) fails and
	// is being retried; nothing is committed meanwhile.
	stateRetrying partState = "retrying"
	// stateWaiting: waiting for the consumer group's next encoder version
	// (the other partitions' contributions to the last epoch).
	stateWaiting partState = "waiting"
	// stateStopped: the partition is no longer assigned here, or failed.
	stateStopped partState = "stopped"
)

var allStates = []partState{stateRunning, stateRetrying, stateWaiting, stateStopped}

// Health gathers what /readyz and the state gauges report: each
// partition's state, and whether the sink answers. Safe for concurrent use.
type Health struct {
	mu    sync.Mutex
	clock clock.Clock
	parts map[partitionID]*partHealth
	// sinkErr is the last sink probe's failure ("" when it answered);
	// sinkChecked says a probe ran.
	sinkErr     string
	sinkChecked bool
	connected   bool
	state       *prometheus.GaugeVec
	age         *prometheus.Desc
}

type partHealth struct {
	state       partState
	reason      string
	since       time.Time
	uncommitted bool
	// pending holds, oldest first, when the oldest message covered by each
	// checkpoint marker not yet saved was read; reading is that of the
	// messages read since the last marker (zero if none).
	pending []time.Time
	reading time.Time
}

// NewHealth registers the partition state gauge and the checkpoint age on
// reg (nil: not registered).
func NewHealth(reg prometheus.Registerer, clk clock.Clock) *Health {
	if clk == nil {
		clk = clock.Real{}
	}
	h := &Health{
		clock: clk,
		parts: map[partitionID]*partHealth{},
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tsrep", Name: "partition_state",
			Help: "1 for the state each assigned partition is in: running, retrying (a checkpoint or dead-letter write fails and is retried), waiting (for the group's next encoder version), stopped."},
			[]string{"topic", "partition", "state"}),
		age: prometheus.NewDesc("tsrep_checkpoint_age_seconds",
			"Age of the oldest data read from the partition that no checkpoint covers yet (0 when everything read is checkpointed; an idle partition stays at 0).",
			[]string{"topic", "partition"}, nil),
	}
	if reg != nil {
		reg.MustRegister(h.state, h)
	}
	return h
}

// Describe implements prometheus.Collector (the checkpoint age).
func (h *Health) Describe(ch chan<- *prometheus.Desc) { ch <- h.age }

// Collect implements prometheus.Collector.
func (h *Health) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	for id, p := range h.parts {
		if p.state == stateStopped {
			continue
		}
		oldest := p.reading
		if len(p.pending) > 0 {
			oldest = p.pending[0]
		}
		age := 0.0
		if !oldest.IsZero() {
			age = now.Sub(oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(h.age, prometheus.GaugeValue, age, id.labels()...)
	}
}

func (h *Health) part(id partitionID) *partHealth {
	p, ok := h.parts[id]
	if !ok {
		p = &partHealth{state: stateStopped}
		h.parts[id] = p
	}
	return p
}

// set moves a partition to state s, for reason.
func (h *Health) set(id partitionID, s partState, reason string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.part(id)
	if p.state != s {
		p.since = h.clock.Now()
	}
	p.state, p.reason = s, reason
	if s == stateStopped {
		p.pending, p.reading = nil, time.Time{}
	}
	for _, st := range allStates {
		v := 0.0
		if st == s {
			v = 1
		}
		h.state.WithLabelValues(id.topic, strconv.Itoa(id.part), string(st)).Set(v)
	}
}

// reading records that the partition read a message at t.
func (h *Health) reading(id partitionID, t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.part(id); p.reading.IsZero() {
		p.reading = t
	}
}

// marked records that a checkpoint marker covering what was read went out.
func (h *Health) marked(id partitionID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.part(id)
	if !p.reading.IsZero() {
		p.pending = append(p.pending, p.reading)
		p.reading = time.Time{}
	}
}

// checkpointed records that a checkpoint was saved.
func (h *Health) checkpointed(id partitionID, _ int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.part(id)
	if len(p.pending) > 0 {
		p.pending = p.pending[1:]
	}
}

func (h *Health) setUncommitted(id partitionID, u bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.part(id).uncommitted = u
}

func (h *Health) uncommitted(id partitionID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.part(id).uncommitted
}

// SetConnected records that the sink was connected and the group is being
// joined.
func (h *Health) SetConnected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connected = true
}

// SinkChecked records the outcome of a probe of the sink (nil: healthy).
func (h *Health) SinkChecked(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sinkChecked = true
	h.sinkErr = ""
	if err != nil {
		h.sinkErr = err.Error()
	}
}

// Ready reports whether the process is doing its job: connected, the sink
// answering (and its bucket existing), and no partition retrying a failed
// step. Otherwise the reasons say why not.
func (h *Health) Ready() (bool, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var why []string
	if !h.connected {
		why = append(why, "starting: not connected yet")
	}
	if h.sinkErr != "" {
		why = append(why, "influxdb: "+h.sinkErr)
	}
	ids := make([]partitionID, 0, len(h.parts))
	for id := range h.parts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return ids[i].topic < ids[j].topic || ids[i].topic == ids[j].topic && ids[i].part < ids[j].part
	})
	now := h.clock.Now()
	for _, id := range ids {
		if p := h.parts[id]; p.state == stateRetrying {
			why = append(why, fmt.Sprintf("partition %s retrying for %s: %s", id, now.Sub(p.since).Round(time.Second), p.reason))
		}
	}
	return len(why) == 0, why
}
