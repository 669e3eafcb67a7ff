package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tsrep/tsrep/ingest"
)

// Metrics are the pipeline's Prometheus metrics. They are registered on the
// registry given to NewMetrics, never on a global one.
type Metrics struct {
	Messages    *prometheus.CounterVec // topic
	Points      *prometheus.CounterVec // topic
	BadInput    *prometheus.CounterVec // reason
	DeadLetters *prometheus.CounterVec // reason
	// DeadLettersSkipped counts dead letters the topic refused even cut
	// down to their headers.
	DeadLettersSkipped prometheus.Counter
	Windows            prometheus.Counter
	SparseWindows      prometheus.Counter
	LatePoints         prometheus.Counter
	Duplicates         prometheus.Counter
	SeriesEvicted      prometheus.Counter
	SeriesRejected     prometheus.Counter
	LatenessCapped     prometheus.Counter
	Series             *prometheus.GaugeVec // topic, partition
	Lag                *prometheus.GaugeVec // topic, partition
	Batches            prometheus.Counter
	LearnSeconds       prometheus.Histogram
	Loss               *prometheus.GaugeVec // objective
	SinkLines          prometheus.Counter
	SinkSeconds        prometheus.Histogram
	SinkErrors         prometheus.Counter
	SinkRejected       prometheus.Counter
	Commits            prometheus.Counter
	CommitErrors       prometheus.Counter
	Checkpoints        prometheus.Counter
	CheckpointTime     *prometheus.GaugeVec // topic, partition: Unix time of the last checkpoint
	Inflight           prometheus.Gauge
	FetchErrors        prometheus.Counter
	OffsetResets       *prometheus.CounterVec // reason: before_log_start, past_log_end
	StageFailures      *prometheus.CounterVec // step: write checkpoint, write dead letters
	Deferred           *prometheus.GaugeVec   // topic, partition
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := func(c prometheus.Collector) {
		if reg != nil {
			reg.MustRegister(c)
		}
	}
	ctr := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tsrep", Name: name, Help: help})
		f(c)
		return c
	}
	ctrVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tsrep", Name: name, Help: help}, labels)
		f(c)
		return c
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tsrep", Name: name, Help: help}, labels)
		f(g)
		return g
	}
	hist := func(name, help string) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "tsrep", Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
		f(h)
		return h
	}
	m := &Metrics{
		Messages:           ctrVec("messages_total", "Kafka messages read.", "topic"),
		Points:             ctrVec("points_total", "Numeric field values decoded (one per series point).", "topic"),
		BadInput:           ctrVec("bad_input_total", "Input rejected or skipped, by reason.", "reason"),
		DeadLetters:        ctrVec("dead_letters_total", "Records written to the dead-letter topic, by reason.", "reason"),
		DeadLettersSkipped: ctr("dead_letters_skipped_total", "Dead letters the dead-letter topic refused even cut down to their headers (max.message.bytes): logged and skipped."),
		Windows:            ctr("windows_total", "Windows emitted."),
		SparseWindows:      ctr("sparse_windows_total", "Windows skipped for holding fewer than window.min_observed points."),
		LatePoints:         ctr("late_points_total", "Points later than window.lateness, dropped."),
		Duplicates:         ctr("duplicate_points_total", "Points that replaced an earlier point of the same slot."),
		SeriesEvicted:      ctr("series_evicted_total", "Series evicted past window.max_series (evict_lru)."),
		SeriesRejected:     ctr("series_rejected_points_total", "Points of new series dropped past window.max_series (drop_new)."),
		LatenessCapped:     ctr("lateness_capped_series_total", "Series whose inferred interval is so fine that window.lateness is more than 65,536 of its slots: their lateness is capped there."),
		Series:             gaugeVec("series", "Series held.", "topic", "partition"),
		Lag:                gaugeVec("consumer_lag", "Messages behind the partition's high watermark.", "topic", "partition"),
		Batches:            ctr("batches_total", "Window batches learnt from."),
		LearnSeconds:       hist("learn_seconds", "Time of a learner step over one batch."),
		Loss:               gaugeVec("train_loss", "Latest prequential training loss, by objective.", "objective"),
		SinkLines:          ctr("sink_lines_total", "Line-protocol points written to InfluxDB."),
		SinkSeconds:        hist("sink_write_seconds", "Time of one successful InfluxDB write request."),
		SinkErrors:         ctr("sink_errors_total", "Failed InfluxDB write attempts (each is retried)."),
		SinkRejected:       ctr("sink_rejected_total", "Points InfluxDB refused as bad data (dead-lettered)."),
		Commits:            ctr("commits_total", "Offset commits."),
		CommitErrors:       ctr("commit_errors_total", "Failed offset commits (the checkpoint still holds the offset)."),
		Checkpoints:        ctr("checkpoints_total", "Checkpoints written."),
		CheckpointTime:     gaugeVec("checkpoint_timestamp_seconds", "Unix time of the partition's last checkpoint.", "topic", "partition"),
		FetchErrors:        ctr("fetch_errors_total", "Failed Kafka fetches (each is retried after reconnecting)."),
		OffsetResets: ctrVec("offset_resets_total", "Partitions moved because their offset was outside the log: before_log_start "+
			"(deleted by retention: those records are lost), past_log_end (the topic was recreated or the broker replaced; continued where kafka.start says).", "reason"),
		Deferred:      gaugeVec("deferred_windows", "Windows whose embedding (and training) waits for the group's next encoder version: the other partitions' contributions to the epochs before.", "topic", "partition"),
		StageFailures: ctrVec("stage_failures_total", "Failed attempts of a partition's durable steps (each retried with backoff, or fatal with pipeline.on_failure = exit), by step.", "step"),
		Inflight:      prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tsrep", Name: "inflight_batches", Help: "Batches between windowing and the sink."}),
	}
	f(m.Inflight)
	return m
}

// WriteDone implements sinks.WriteObserver.
func (m *Metrics) WriteDone(lines int, d time.Duration) {
	m.SinkLines.Add(float64(lines))
	m.SinkSeconds.Observe(d.Seconds())
}

// WriteFailed implements sinks.WriteObserver.
func (m *Metrics) WriteFailed(error, bool) { m.SinkErrors.Inc() }

func (m *Metrics) bad(r ingest.Reason) { m.BadInput.WithLabelValues(string(r)).Inc() }
