package repartition

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the repartition stage's and the input detector's Prometheus
// metrics, registered on the registry given to NewMetrics.
type Metrics struct {
	Messages *prometheus.CounterVec // topic: input messages read
	Points   prometheus.Counter     // points written to the internal topic
	Records  prometheus.Counter     // records written to the internal topic
	// Deduplicated counts points not written again after a restart or a
	// failed write because the internal topic already had them.
	Deduplicated prometheus.Counter
	Buffered     prometheus.Gauge     // points read, waiting for the event-time frontier
	Lag          *prometheus.GaugeVec // topic, partition: input messages not yet committed
	// FrontierLag is how far (event time, seconds) the frontier up to
	// which points are written trails the newest point read.
	FrontierLag prometheus.Gauge
	ForcedCuts  prometheus.Counter
	Commits     prometheus.Counter
	WriteErrors prometheus.Counter
	// Unkeyed and Sampled are the detector's: series sampled in a
	// partition, and of those, series also sampled in another partition.
	Unkeyed *prometheus.GaugeVec // topic, partition
	Sampled *prometheus.GaugeVec // topic, partition
}

// NewMetrics registers the metrics on reg (nil: unregistered).
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
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tsrep", Name: name, Help: help})
		f(g)
		return g
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tsrep", Name: name, Help: help}, labels)
		f(g)
		return g
	}
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tsrep", Name: "repartition_messages_total",
			Help: "Input messages read by the repartition stage."}, []string{"topic"}),
		Points:       ctr("repartition_points_total", "Points written to the internal repartition topic."),
		Records:      ctr("repartition_records_total", "Records written to the internal repartition topic."),
		Deduplicated: ctr("repartition_deduplicated_total", "Points not written again (after a restart or an ambiguous write failure) because the internal topic already held them."),
		Buffered:     gauge("repartition_buffered_points", "Points read by the repartition stage that wait for every input partition to pass their event time."),
		Lag:          gaugeVec("repartition_lag", "Input messages after the repartition stage's committed offset.", "topic", "partition"),
		FrontierLag:  gauge("repartition_frontier_lag_seconds", "Event time between the newest point read and the frontier up to which points are written (the slowest input partition)."),
		ForcedCuts:   ctr("repartition_forced_cuts_total", "Times an input partition held so many points at one event time that they were written before the others caught up."),
		Commits:      ctr("repartition_commits_total", "Offset commits of the repartition stage."),
		WriteErrors:  ctr("repartition_write_errors_total", "Failed writes to the internal topic (retried)."),
		Unkeyed: gaugeVec("unkeyed_series", "Series sampled from an input partition that were also sampled from another partition: "+
			"above 0, the input is not keyed by series (see kafka.repartition).", "topic", "partition"),
		Sampled: gaugeVec("sampled_series", "Series in the newest messages sampled from an input partition (for tsrep_unkeyed_series).", "topic", "partition"),
	}
	f(m.Messages)
	return m
}
