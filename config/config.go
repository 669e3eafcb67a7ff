// Package config holds tsrep's typed configuration: one Config struct decoded
// from config.toml, defaults for every key, and Validate, which names the key
// to change in every message.
package config

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Duration is a time.Duration that decodes from a TOML string such as "250ms".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole of tsrep's configuration. The zero value is not useful;
// start from Default() and decode on top of it (Load does).
type Config struct {
	Kafka    Kafka    `toml:"kafka"`
	Window   Window   `toml:"window"`
	Model    Model    `toml:"model"`
	Influx   Influx   `toml:"influx"`
	Anomaly  Anomaly  `toml:"anomaly"`
	Pipeline Pipeline `toml:"pipeline"`
	HTTP     HTTP     `toml:"http"`
	Log      Log      `toml:"log"`
}

// Kafka configures the consumer group, the decoders and the dead-letter topic.
type Kafka struct {
	Brokers []string `toml:"brokers"`
	Topics  []string `toml:"topics"`
	Group   string   `toml:"group"`
	// Start is where a group with no committed offset begins: "earliest",
	// "latest", or an RFC 3339 timestamp (the first offset at or after it).
	Start string `toml:"start"`
	// Format of message values: "influx" (line protocol) or "json".
	Format string `toml:"format"`
	// Precision of line-protocol and numeric JSON timestamps: ns, us, ms, s.
	Precision string `toml:"precision"`
	// DeadLetterTopic receives undecodable input with the reason in a header.
	// Empty disables dead-lettering (bad input is still counted and logged).
	DeadLetterTopic string `toml:"dead_letter_topic"`
	// MaxFuture rejects points whose timestamp is further than this ahead of
	// their Kafka message's timestamp (0 disables the check).
	MaxFuture Duration `toml:"max_future"`
	// PrecisionTolerance is how far a point's timestamp may be from its
	// Kafka message's timestamp before tsrep checks whether it only makes
	// sense in another precision than Precision (seconds read as
	// nanoseconds land in January 1970): such a point is dead-lettered
	// with reason "precision". A timestamp no other precision explains is
	// used however old it is (backfill). 0 disables the check.
	PrecisionTolerance Duration `toml:"precision_tolerance"`
	// MaxTags and MaxFields cap the tags and the fields of one point; a
	// point with more is dead-lettered (too_many_tags, too_many_fields).
	MaxTags   int `toml:"max_tags"`
	MaxFields int `toml:"max_fields"`
	// MaxFetchBytes is the largest fetch per request and the largest
	// message accepted (larger: message_too_large).
	MaxFetchBytes  int      `toml:"max_fetch_bytes"`
	FetchMaxWait   Duration `toml:"fetch_max_wait"`
	SessionTimeout Duration `toml:"session_timeout"`
	// ClientID names this instance to the brokers.
	ClientID string `toml:"client_id"`
	// Repartition says whether input is first repartitioned by series
	// through the internal topic <group>-repartition (RepartitionTopic), as
	// Kafka Streams does, so that every point of a series reaches one
	// partition of the learning pipeline whatever the producers' keys:
	// "off" (the input must be keyed by series), "always", or "auto"
	// (decided when the service starts: repartition when the group already
	// does, or when a sample of the input finds series in more than one
	// partition).
	Repartition string `toml:"repartition"`
	// RepartitionRetention is the retention of the internal topic when
	// tsrep creates it ("0s": keep records forever).
	RepartitionRetention Duration `toml:"repartition_retention"`
	// RepartitionIdle is how long an input partition that has been read to
	// its end may stay quiet before the repartition stage stops waiting
	// for it to order the other partitions' points by event time (Flink's
	// watermark idleness).
	RepartitionIdle Duration `toml:"repartition_idle"`
	TLS             TLS      `toml:"tls"`
	SASL            SASL     `toml:"sasl"`
}

// TLS configures encryption (and client certificates) to the brokers.
type TLS struct {
	Enabled bool `toml:"enabled"`
	// CAFile verifies the brokers (PEM); empty uses the system roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are a client certificate (PEM), for brokers
	// that require one.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ServerName overrides the name verified in the brokers' certificates.
	ServerName         string `toml:"server_name"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
}

// SASL configures authentication to the brokers.
type SASL struct {
	// Mechanism is "" (none), "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism string `toml:"mechanism"`
	Username  string `toml:"username"`
	// PasswordEnv names the environment variable holding the password.
	PasswordEnv string `toml:"password_env"`
}

// Window configures the event-time windowing of each series.
type Window struct {
	// Interval is the sampling interval of every series, or "auto" (0) to
	// infer it per series from its first points.
	Interval Duration `toml:"-"`
	// IntervalText is the raw key: a duration or "auto".
	IntervalText string `toml:"interval"`
	Length       int    `toml:"length"`
	Stride       int    `toml:"stride"`
	// Lateness is how far behind the newest point of its series a point may
	// arrive and still be placed; later points are counted and dropped.
	Lateness Duration `toml:"lateness"`
	// MinObserved is the share of a window's points that must be observed
	// for the window to be emitted (0..1].
	MinObserved float64 `toml:"min_observed"`
	// BatchSize is the number of windows per Arrow record batch.
	BatchSize int `toml:"batch_size"`
	// FlushInterval closes a non-empty batch after this long.
	FlushInterval Duration `toml:"flush_interval"`
	// MaxSeries caps the series held per partition.
	MaxSeries int `toml:"max_series"`
	// SeriesPolicy says what happens to a new series past MaxSeries:
	// "evict_lru" drops the state of the least recently updated series,
	// "drop_new" drops the new series' points (counted).
	SeriesPolicy string `toml:"series_policy"`
	// Multichannel windows all fields of one measurement + tag set together
	// (adjacent rows of a batch), so learners can use cross-channel
	// information; max_series then counts groups.
	Multichannel bool `toml:"multichannel"`
	// LatePolicy says what happens to a point later than Lateness:
	// "drop" (counted) or "dead_letter" (counted and sent to the dead-letter topic).
	LatePolicy string `toml:"late_policy"`
}

// Model configures the online learner.
type Model struct {
	// Kind is the learner: "ssl" (the self-supervised encoder with its
	// three objectives), "rls" (per-series recursive least squares on the
	// window's lags only) or "none" (learning off: training-step counts).
	Kind string `toml:"kind"`
	// Name is the value of the output's model tag.
	Name string `toml:"name"`
	// Order is the number of lags of the autoregression (rls, and the
	// linear forecast path of ssl).
	Order int `toml:"order"`
	// Forgetting is the RLS forgetting factor in (0, 1].
	Forgetting float64 `toml:"forgetting"`
	Seed       int64   `toml:"seed"`
	// Dim is the embedding size (ssl); Hidden the width of its hidden layers.
	Dim    int `toml:"dim"`
	Hidden int `toml:"hidden"`
	// TrainBatch is the number of windows of one optimiser step (ssl); the
	// other windows of the step are the contrastive negatives.
	TrainBatch   int     `toml:"train_batch"`
	LearningRate float64 `toml:"learning_rate"`
	// Temperature of the InfoNCE loss (ssl).
	Temperature float64 `toml:"temperature"`
	// Weights of the encoder's two contrastive losses (ssl): TS2Vec's
	// hierarchical loss on the per-timestep representations of two crops,
	// and the instance-level InfoNCE on their pooled embeddings. (The
	// forecast and imputation models are per series, fitted in closed
	// form: they have no loss weight.) At least one must be > 0.
	WeightHier     float64 `toml:"weight_hier"`
	WeightContrast float64 `toml:"weight_contrast"`
	// EmbedEvery writes a series' embedding every this many windows (ssl):
	// embeddings are most of what the sink writes.
	EmbedEvery int `toml:"embed_every"`
	// TrainEvery learns from every this many windows of a series (ssl), at
	// an offset of the series' own; all windows are still predicted.
	TrainEvery int `toml:"train_every"`
	// Epoch is the event-time length of one round of the group's shared
	// encoder (ssl): the windows ending in epoch r are embedded with encoder
	// version r, the merge of what every partition learnt in the epochs
	// before it.
	Epoch Duration `toml:"epoch"`
	// Merge is how an epoch's contributions become the next encoder
	// version (ssl): "mean", federated averaging of the partitions'
	// updates (each weighted by its share of the epoch's training
	// windows), every partition stepping on train_batch/partitions
	// windows (at least 32); or "sum", their sum, every partition stepping
	// on train_batch windows (see models.MergeRule).
	Merge string `toml:"merge"`
	// MergeRate scales the merge.
	MergeRate float64 `toml:"merge_rate"`
	// SyncIdle is how long a partition that has read all of its log waits
	// for new records before it closes its epoch, so that the group does
	// not wait for it (0 never does: an idle partition then holds the
	// others back until it gets data).
	SyncIdle Duration `toml:"sync_idle"`
}

// Anomaly configures the online anomaly score written to the anomaly
// measurement (see models.AnomalyConfig).
type Anomaly struct {
	// Enabled scores every point a forecast was made for.
	Enabled bool `toml:"enabled"`
	// Details also writes each score's parts (surprise, z, novelty);
	// otherwise only score (a value per scored point is what InfluxDB
	// pays for).
	Details bool `toml:"details"`
	// RangeTolerance flags values further outside the series' range so
	// far than this share of it (0: off).
	RangeTolerance float64 `toml:"range_tolerance"`
	// TailHorizon is the memory, in points, of each series' error
	// distribution.
	TailHorizon int `toml:"tail_horizon"`
	// NoveltyK keeps this many of a series' embeddings to score how new
	// its newest is (0: off).
	NoveltyK int `toml:"novelty_k"`
}

// Influx configures the InfluxDB sink.
type Influx struct {
	URL string `toml:"url"`
	// Bucket is the 2.x bucket, or "database/retention-policy" on 1.8
	// ("database" alone means its default retention policy).
	Bucket string `toml:"bucket"`
	Org    string `toml:"org"`
	// TokenEnv names the environment variable holding the API token
	// (2.x) or "user:password" (1.8 with auth).
	TokenEnv string `toml:"token_env"`
	// CreateBucket creates the database (1.8) or bucket (2.x) if missing.
	CreateBucket bool `toml:"create_bucket"`
	BatchPoints  int  `toml:"batch_points"`
	// Gzip is "auto" (compress unless InfluxDB is on a loopback address),
	// "always" or "never".
	Gzip    string   `toml:"gzip"`
	Timeout Duration `toml:"timeout"`
	// RetryMaxInterval caps the backoff between retries of a failed write.
	// Writes are retried until they succeed or tsrep stops: a commit waits.
	RetryMaxInterval Duration `toml:"retry_max_interval"`
	// MeasurementPrefix prefixes the output measurements (tsrep_forecast...).
	MeasurementPrefix string `toml:"measurement_prefix"`
	// QueryLanguage is how tsrep reads its output back (query, report,
	// demo, the HTTP API): "influxql" on the v1 /query endpoint, which
	// InfluxDB 1.8, 2.x (with a DBRP mapping) and 3.x serve, or "flux"
	// (1.8 with flux-enabled, 2.x). Default "influxql".
	QueryLanguage string `toml:"query_language"`
}

// GzipOn resolves the gzip mode: "auto" compresses request bodies unless
// the URL's host is a loopback address, where compressing costs CPU on both
// ends (tsrep's and InfluxDB's, on the same machine) and saves nothing.
func (in *Influx) GzipOn() (bool, error) {
	switch in.Gzip {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		u, err := url.Parse(in.URL)
		if err != nil {
			return true, nil // the url check reports it
		}
		h := u.Hostname()
		if h == "localhost" {
			return false, nil
		}
		ip := net.ParseIP(h)
		return ip == nil || !ip.IsLoopback(), nil
	}
	return false, fmt.Errorf("%q: want \"auto\", \"always\" or \"never\"", in.Gzip)
}

// Pipeline configures in-flight bounds, commits and shutdown.
type Pipeline struct {
	// MaxInflightBatches bounds the batches between windowing and the sink
	// per partition.
	MaxInflightBatches int `toml:"max_inflight_batches"`
	// StateStore is where each partition's checkpoint lives: "dir" (a file
	// per partition under CheckpointDir: one instance, or instances sharing
	// the directory) or "kafka" (a compacted topic, StateTopic, so that
	// instances on different machines take over each other's partitions).
	StateStore string `toml:"state_store"`
	// StateTopic is the compacted topic of the "kafka" state store; empty
	// derives it from the group: "<kafka.group>-state".
	StateTopic string `toml:"state_topic"`
	// CheckpointDir holds one state file per topic-partition (state_store
	// "dir"), under a folder named after the group.
	CheckpointDir string `toml:"checkpoint_dir"`
	// CheckpointInterval is how often each partition's state is written and
	// then its offset committed.
	CheckpointInterval Duration `toml:"checkpoint_interval"`
	ShutdownTimeout    Duration `toml:"shutdown_timeout"`
	// OnFailure says what a partition does when it cannot make progress (a
	// checkpoint that cannot be written, a dead-letter topic that refuses
	// records): "retry" (with backoff, until the cause goes; /readyz and
	// tsrep_partition_state say so meanwhile) or "exit" (the process stops
	// with an error, for a supervisor to restart or page).
	OnFailure string `toml:"on_failure"`
}

// HTTP configures the operations endpoints.
type HTTP struct {
	// Listen is the address of /metrics, /healthz and /readyz; empty disables.
	Listen string `toml:"listen"`
	// Pprof also serves net/http/pprof under /debug/pprof/.
	Pprof bool `toml:"pprof"`
}

// Log configures logging.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// MaxLatenessSlots is the most slots of lateness a series' ring buffer
// holds (windowing.MaxLatenessSlots): window.lateness may not be more
// intervals than this with a configured interval, and with an inferred
// one the windowing caps it here.
const MaxLatenessSlots = 1 << 16

// Warnings lists what Validate accepts but an operator should know: a
// configuration that works, insecurely.
func (c *Config) Warnings() []string {
	var w []string
	if c.Kafka.SASL.Mechanism == "plain" && !c.Kafka.TLS.Enabled {
		w = append(w, PlainSASLWarning)
	}
	return w
}

// PlainSASLWarning is the warning for SASL PLAIN without TLS.
const PlainSASLWarning = "kafka.sasl.mechanism = \"plain\" without kafka.tls.enabled = true sends the Kafka password in clear text: enable kafka.tls, or use scram-sha-256/scram-sha-512"

// Default returns the configuration every key falls back to.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Brokers:         []string{"127.0.0.1:9092"},
			Topics:          []string{"metrics"},
			Group:           "tsrep",
			Start:           "earliest",
			Format:          "influx",
			Precision:       "ns",
			DeadLetterTopic: "tsrep-dead-letters",
			MaxFetchBytes:   8 << 20,
			// 20 years: seconds or milliseconds read as nanoseconds are
			// 50+ years off today's message times.
			PrecisionTolerance: Duration{20 * 365 * 24 * time.Hour},
			MaxTags:            256,
			MaxFields:          1024,
			FetchMaxWait:       Duration{250 * time.Millisecond},
			SessionTimeout:     Duration{30 * time.Second},
			ClientID:           "tsrep",
			// auto: a keyed topic is read as it is (after a sample at
			// start), an unkeyed one (Telegraf without routing_tag) is
			// repartitioned instead of learnt wrong.
			Repartition:          "auto",
			RepartitionRetention: Duration{7 * 24 * time.Hour},
			RepartitionIdle:      Duration{5 * time.Second},
			SASL:                 SASL{PasswordEnv: "TSREP_KAFKA_PASSWORD"},
		},
		Window: Window{
			IntervalText:  "auto",
			Length:        64,
			Stride:        8,
			MinObserved:   0.5,
			BatchSize:     256,
			FlushInterval: Duration{time.Second},
			MaxSeries:     20000,
			SeriesPolicy:  "evict_lru",
			LatePolicy:    "drop",
		},
		Model: Model{
			Kind:           "ssl",
			Name:           "ssl",
			Order:          24,
			Forgetting:     0.9999,
			Seed:           1,
			Dim:            32,
			Hidden:         32,
			TrainBatch:     128,
			LearningRate:   3e-3,
			Temperature:    0.2,
			WeightHier:     1,
			WeightContrast: 0.5,
			EmbedEvery:     128,
			TrainEvery:     512,
			Epoch:          Duration{24 * time.Hour},
			Merge:          "mean",
			MergeRate:      1,
			SyncIdle:       Duration{30 * time.Second},
		},
		Anomaly: Anomaly{Enabled: true, RangeTolerance: 0.005, TailHorizon: 4000},
		Influx: Influx{
			URL:               "http://127.0.0.1:8086",
			Bucket:            "tsrep",
			TokenEnv:          "TSREP_INFLUX_TOKEN",
			CreateBucket:      true,
			BatchPoints:       5000,
			Gzip:              "auto",
			Timeout:           Duration{30 * time.Second},
			RetryMaxInterval:  Duration{30 * time.Second},
			MeasurementPrefix: "tsrep_",
			QueryLanguage:     "influxql",
		},
		Pipeline: Pipeline{
			MaxInflightBatches: 4,
			StateStore:         "dir",
			CheckpointDir:      "var/checkpoints",
			CheckpointInterval: Duration{5 * time.Second},
			ShutdownTimeout:    Duration{30 * time.Second},
			OnFailure:          "retry",
		},
		HTTP: HTTP{Listen: "127.0.0.1:9464"},
		Log:  Log{Level: "info", Format: "text"},
	}
}

// Load reads a TOML file on top of Default and validates the result, with
// ${VAR} taken from the environment (see Interpolate). Unknown keys are an
// error, so a typo does not silently fall back to a default. Loader adds
// overrides (--set).
func Load(path string) (Config, error) { return Loader{}.Load(path) }

// Parse decodes TOML text on top of Default and validates it, as Load does.
// name is used in error messages.
func Parse(b []byte, name string) (Config, error) { return Loader{}.Parse(b, name) }

// Validate checks every key and the keys against each other. It also
// resolves derived fields (Window.Interval from Window.IntervalText). The
// messages name the key to change.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	k := &c.Kafka
	if len(k.Brokers) == 0 {
		bad("kafka.brokers: list at least one broker address (host:port)")
	}
	if len(k.Topics) == 0 {
		bad("kafka.topics: list at least one topic to consume")
	}
	if k.Group == "" {
		bad("kafka.group: set a consumer group id")
	}
	if _, _, err := ParseStart(k.Start); err != nil {
		bad("kafka.start: %v", err)
	}
	switch k.Format {
	case "influx", "json":
	default:
		bad("kafka.format: %q is not one of influx, json", k.Format)
	}
	if _, err := PrecisionDuration(k.Precision); err != nil {
		bad("kafka.precision: %v", err)
	}
	if k.MaxFuture.Duration < 0 {
		bad("kafka.max_future: must be >= 0 (0 disables the check)")
	}
	if k.PrecisionTolerance.Duration < 0 {
		bad("kafka.precision_tolerance: must be >= 0 (0 disables the check)")
	}
	if k.MaxTags < 1 || k.MaxTags > 1<<16 {
		bad("kafka.max_tags: %d must be in [1, 65536]", k.MaxTags)
	}
	if k.MaxFields < 1 || k.MaxFields > 1<<16 {
		bad("kafka.max_fields: %d must be in [1, 65536]", k.MaxFields)
	}
	if k.MaxFetchBytes < 1<<10 {
		bad("kafka.max_fetch_bytes: %d is too small; use at least 1024 (default 8 MiB)", k.MaxFetchBytes)
	}
	if k.FetchMaxWait.Duration <= 0 {
		bad("kafka.fetch_max_wait: must be > 0")
	}
	if k.SessionTimeout.Duration < time.Second {
		bad("kafka.session_timeout: must be at least 1s")
	}
	switch k.Repartition {
	case "off", "auto", "always":
		for _, t := range k.Topics {
			if k.Repartition != "off" && t == c.RepartitionTopic() {
				bad("kafka.topics: %q is the internal topic of kafka.repartition; consume the input topics, or set kafka.repartition = \"off\"", t)
			}
		}
	default:
		bad("kafka.repartition: %q is not one of off, auto, always", k.Repartition)
	}
	if k.RepartitionRetention.Duration < 0 {
		bad("kafka.repartition_retention: must be >= 0 (0s keeps the internal topic's records forever)")
	}
	if k.RepartitionIdle.Duration <= 0 {
		bad("kafka.repartition_idle: must be > 0")
	}
	if (k.TLS.CertFile == "") != (k.TLS.KeyFile == "") {
		bad("kafka.tls.cert_file and kafka.tls.key_file: give both or neither")
	}
	if !k.TLS.Enabled && (k.TLS.CAFile != "" || k.TLS.CertFile != "") {
		bad("kafka.tls.enabled: set it to true to use kafka.tls.ca_file / cert_file")
	}
	switch k.SASL.Mechanism {
	case "":
	case "plain", "scram-sha-256", "scram-sha-512":
		if k.SASL.Username == "" {
			bad("kafka.sasl.username: set it for kafka.sasl.mechanism %q", k.SASL.Mechanism)
		}
		if k.SASL.PasswordEnv == "" {
			bad("kafka.sasl.password_env: name the environment variable holding the password")
		}
	default:
		bad("kafka.sasl.mechanism: %q is not one of plain, scram-sha-256, scram-sha-512 (or empty)", k.SASL.Mechanism)
	}

	w := &c.Window
	switch strings.TrimSpace(w.IntervalText) {
	case "", "auto", "0":
		w.Interval = Duration{}
	default:
		d, err := time.ParseDuration(w.IntervalText)
		if err != nil || d <= 0 {
			bad("window.interval: %q is neither a positive duration nor \"auto\"", w.IntervalText)
		}
		w.Interval = Duration{d}
	}
	if w.Length < 4 {
		bad("window.length: %d is too short; use at least 4 points", w.Length)
	}
	if w.Stride < 1 || (w.Length >= 4 && w.Stride > w.Length) {
		bad("window.stride: %d must be in [1, window.length=%d]", w.Stride, w.Length)
	}
	if w.Lateness.Duration < 0 {
		bad("window.lateness: must be >= 0")
	}
	if l, ivl := w.Lateness.Duration, w.Interval.Duration; l > 0 && ivl > 0 && (l/ivl > MaxLatenessSlots || l/ivl == MaxLatenessSlots && l%ivl != 0) {
		bad("window.lateness: %s is more than %d intervals; lower it or raise window.interval", w.Lateness, MaxLatenessSlots)
	}
	if !(w.MinObserved > 0 && w.MinObserved <= 1) {
		bad("window.min_observed: %v must be in (0, 1]", w.MinObserved)
	}
	if w.BatchSize < 1 {
		bad("window.batch_size: must be >= 1")
	}
	if w.FlushInterval.Duration <= 0 {
		bad("window.flush_interval: must be > 0")
	}
	if w.MaxSeries < 1 {
		bad("window.max_series: must be >= 1")
	}
	switch w.SeriesPolicy {
	case "evict_lru", "drop_new":
	default:
		bad("window.series_policy: %q is not one of evict_lru, drop_new", w.SeriesPolicy)
	}
	switch w.LatePolicy {
	case "drop", "dead_letter":
	default:
		bad("window.late_policy: %q is not one of drop, dead_letter", w.LatePolicy)
	}

	m := &c.Model
	switch m.Kind {
	case "ssl", "rls", "none":
	default:
		bad("model.kind: %q is not one of ssl, rls, none", m.Kind)
	}
	if m.Kind == "ssl" {
		if m.Dim < 1 || m.Hidden < 4 {
			bad("model.dim and model.hidden: %d and %d must be at least 1 and 4", m.Dim, m.Hidden)
		}
		if m.TrainBatch < 2 || m.TrainBatch > w.MaxSeries {
			bad("model.train_batch: %d must be in [2, window.max_series=%d]", m.TrainBatch, w.MaxSeries)
		}
		if !(m.LearningRate > 0) || !(m.Temperature > 0) {
			bad("model.learning_rate and model.temperature must be > 0")
		}
		if m.WeightHier < 0 || m.WeightContrast < 0 || m.WeightHier+m.WeightContrast == 0 {
			bad("model.weight_hier and model.weight_contrast: must be >= 0, one of them > 0")
		}
		if m.EmbedEvery < 1 {
			bad("model.embed_every: must be >= 1")
		}
		if m.TrainEvery < 1 {
			bad("model.train_every: must be >= 1")
		}
		if m.Epoch.Duration < time.Second {
			bad("model.epoch: %s is too short; use at least 1s of event time", m.Epoch)
		}
		if m.Merge != "mean" && m.Merge != "sum" {
			bad("model.merge: %q must be \"mean\" or \"sum\"", m.Merge)
		}
		if !(m.MergeRate > 0 && m.MergeRate <= 1) {
			bad("model.merge_rate: %v must be in (0, 1]", m.MergeRate)
		}
		if m.SyncIdle.Duration < 0 {
			bad("model.sync_idle: must be >= 0 (0: never close an epoch for an idle partition)")
		}
		if w.Length >= 4 && m.Order > w.Length-2 {
			bad("model.order: %d must be at most window.length-2=%d for ssl", m.Order, w.Length-2)
		}
	}
	if m.Name == "" {
		bad("model.name: set the value of the output's model tag")
	}
	if m.Order < 1 || (w.Length >= 4 && m.Order >= w.Length) {
		bad("model.order: %d must be in [1, window.length-1=%d]", m.Order, w.Length-1)
	}
	if !(m.Forgetting > 0 && m.Forgetting <= 1) {
		bad("model.forgetting: %v must be in (0, 1]", m.Forgetting)
	}

	if a := c.Anomaly; a.RangeTolerance < 0 || a.TailHorizon < 1 || a.NoveltyK < 0 {
		bad("anomaly.range_tolerance, tail_horizon, novelty_k: must be >= 0, >= 1, >= 0")
	}

	in := &c.Influx
	if !strings.HasPrefix(in.URL, "http://") && !strings.HasPrefix(in.URL, "https://") {
		bad("influx.url: %q must start with http:// or https://", in.URL)
	}
	if in.Bucket == "" {
		bad("influx.bucket: set the bucket (2.x) or database[/retention-policy] (1.8)")
	}
	if in.BatchPoints < 1 {
		bad("influx.batch_points: must be >= 1")
	}
	if _, err := in.GzipOn(); err != nil {
		bad("influx.gzip: %v", err)
	}
	if !utf8.ValidString(in.MeasurementPrefix) || strings.HasSuffix(in.MeasurementPrefix, `\`) ||
		strings.ContainsFunc(in.MeasurementPrefix, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		bad("influx.measurement_prefix: %q must be printable UTF-8 not ending in a backslash", in.MeasurementPrefix)
	}
	if in.Timeout.Duration <= 0 {
		bad("influx.timeout: must be > 0")
	}
	if in.RetryMaxInterval.Duration <= 0 {
		bad("influx.retry_max_interval: must be > 0")
	}
	if in.QueryLanguage != "influxql" && in.QueryLanguage != "flux" {
		bad("influx.query_language: %q must be \"influxql\" (InfluxDB 1.8, 2.x with a DBRP mapping, 3.x) or \"flux\" (1.8 with flux-enabled, 2.x)", in.QueryLanguage)
	}

	p := &c.Pipeline
	if p.MaxInflightBatches < 1 {
		bad("pipeline.max_inflight_batches: must be >= 1")
	}
	switch p.StateStore {
	case "dir":
		if p.CheckpointDir == "" {
			bad("pipeline.checkpoint_dir: set a directory for the per-partition state files")
		}
	case "kafka":
		if p.StateTopic != "" && !validTopic(p.StateTopic) {
			bad("pipeline.state_topic: %q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", p.StateTopic)
		}
	default:
		bad("pipeline.state_store: %q is not one of dir, kafka", p.StateStore)
	}
	switch p.OnFailure {
	case "retry", "exit":
	default:
		bad("pipeline.on_failure: %q is not one of retry, exit", p.OnFailure)
	}
	if p.CheckpointInterval.Duration <= 0 {
		bad("pipeline.checkpoint_interval: must be > 0")
	}
	if p.ShutdownTimeout.Duration <= 0 {
		bad("pipeline.shutdown_timeout: must be > 0")
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format: %q is not one of text, json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// StartKind says where a consumer group with no committed offset begins.
type StartKind int

// Start positions.
const (
	StartEarliest StartKind = iota
	StartLatest
	StartTime
)

// ParseStart parses kafka.start: "earliest", "latest" or an RFC 3339 time.
func ParseStart(s string) (StartKind, time.Time, error) {
	switch s {
	case "earliest", "":
		return StartEarliest, time.Time{}, nil
	case "latest":
		return StartLatest, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("%q is not earliest, latest or an RFC 3339 time such as 2024-01-02T15:04:05Z", s)
	}
	return StartTime, t, nil
}

// PrecisionDuration returns the unit of a timestamp precision name.
func PrecisionDuration(p string) (time.Duration, error) {
	switch p {
	case "ns", "n":
		return time.Nanosecond, nil
	case "us", "u":
		return time.Microsecond, nil
	case "ms":
		return time.Millisecond, nil
	case "s":
		return time.Second, nil
	}
	return 0, fmt.Errorf("%q is not one of ns, us, ms, s", p)
}

// validTopic reports whether s is a legal Kafka topic name.
func validTopic(s string) bool {
	if s == "" || len(s) > 249 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// TopicName derives a legal Kafka topic name from a group name and a
// suffix: characters a topic name cannot hold become '_', and when any
// was replaced (or the name is too long) a hash of the original keeps
// names of different groups apart.
func TopicName(group, suffix string) string {
	name := group + "-" + suffix
	if validTopic(name) {
		return name
	}
	var b strings.Builder
	for _, r := range group {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	g := b.String()
	if len(g) > 200 {
		g = g[:200]
	}
	h := fnv.New32a()
	h.Write([]byte(group))
	return fmt.Sprintf("%s-%08x-%s", g, h.Sum32(), suffix)
}

// RepartitionTopic is the internal topic that kafka.repartition routes
// the input through: <group>-repartition.
func (c *Config) RepartitionTopic() string { return TopicName(c.Kafka.Group, "repartition") }

// RepartitionGroup is the consumer group of the repartition stage, which
// reads kafka.topics and writes RepartitionTopic: <group>-repartition.
func (c *Config) RepartitionGroup() string { return c.Kafka.Group + "-repartition" }

// StateTopicName is the compacted topic of the "kafka" state store.
func (c *Config) StateTopicName() string {
	if c.Pipeline.StateTopic != "" {
		return c.Pipeline.StateTopic
	}
	return TopicName(c.Kafka.Group, "state")
}
