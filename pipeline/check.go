package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/repartition"
	"github.com/tsrep/tsrep/sinks"
)

// Check is the outcome of one pre-flight check. Warning, when set, is a
// check that passed with something the operator should change.
type Check struct {
	What    string
	Err     error
	Note    string
	Warning string
}

// Preflight checks what a run needs without consuming or writing anything:
// the Kafka brokers and topics (with TLS/SASL as configured), the InfluxDB
// server, credentials and bucket, and the checkpoint directory. It is what
// `tsrep run --dry-run` prints.
func Preflight(ctx context.Context, cfg config.Config, log *slog.Logger) []Check {
	var out []Check
	add := func(what string, err error, note string) { out = append(out, Check{What: what, Err: err, Note: note}) }
	for _, w := range cfg.Warnings() {
		out = append(out, Check{What: "config", Warning: w})
	}

	d, err := ingest.NewDialer(cfg.Kafka)
	if err != nil {
		add("kafka credentials", err, "")
	} else {
		md, err := ingest.NewClient(cfg.Kafka.Brokers, d).Metadata(ctx, &kafka.MetadataRequest{Topics: cfg.Kafka.Topics})
		switch {
		case err != nil:
			add("kafka "+strings.Join(cfg.Kafka.Brokers, ","), err, "")
		default:
			add("kafka "+strings.Join(cfg.Kafka.Brokers, ","), nil, fmt.Sprintf("%d brokers", len(md.Brokers)))
			topicsOK := true
			for _, tp := range md.Topics {
				if tp.Error != nil {
					add("topic "+tp.Name, tp.Error, "")
					topicsOK = false
				} else {
					add("topic "+tp.Name, nil, fmt.Sprintf("%d partitions", len(tp.Partitions)))
				}
			}
			if topicsOK {
				out = append(out, repartitionCheck(ctx, cfg))
			}
		}
	}

	ic := InfluxConfig(cfg)
	client := influxdb2.NewClientWithOptions(ic.URL, ic.Token, influxdb2.DefaultOptions().SetLogLevel(0))
	defer client.Close()
	influxWhat := "influxdb " + sinks.RedactURL(ic.URL) // never the password of a user:password@ URL
	if h, err := client.Health(ctx); err != nil {
		add(influxWhat, redactURLErr(err, ic.URL), "")
	} else {
		v := "unknown"
		if h.Version != nil {
			v = *h.Version
		}
		add(influxWhat, nil, "version "+v)
		err := readBucket(ctx, cfg, client, ic)
		switch {
		case err == nil:
			add("bucket "+ic.Bucket, nil, "readable")
		case bucketMissing(err) && ic.CreateBucket:
			add("bucket "+ic.Bucket, nil, "missing; will be created (influx.create_bucket = true)")
		case bucketMissing(err):
			add("bucket "+ic.Bucket, fmt.Errorf("does not exist: create it, or set influx.create_bucket = true (%w)", redactURLErr(err, ic.URL)), "")
		case strings.Contains(err.Error(), "retention policy"):
			add("bucket "+ic.Bucket, fmt.Errorf("%w: the retention policy after the / of influx.bucket must exist (influx.create_bucket creates only the database)", redactURLErr(err, ic.URL)), "")
		default:
			add("bucket "+ic.Bucket, explainInflux(redactURLErr(err, ic.URL)), "")
		}
	}

	if cfg.Pipeline.StateStore == "kafka" {
		add("state_store kafka", nil, "topic "+cfg.StateTopicName()+" (created, compacted, if missing)")
		return out
	}
	dir := filepath.Join(cfg.Pipeline.CheckpointDir, PathElement(cfg.Kafka.Group)) // as NewDirStore names it
	note, err := checkDirWritable(dir)
	add("checkpoint_dir "+dir, err, note)
	return out
}

// checkDirWritable checks that dir can hold checkpoint files, without
// creating it: an existing dir must take a file; a missing one is checked
// at its nearest existing parent, which must be a directory that takes
// one (the run creates dir there). The probe file is removed at once.
func checkDirWritable(dir string) (string, error) {
	probe := func(d string) error {
		f, err := os.CreateTemp(d, ".tsrep-preflight-*")
		if err != nil {
			return err
		}
		f.Close()
		return os.Remove(f.Name())
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory (pipeline.checkpoint_dir)", dir)
	case err == nil:
		if err := probe(dir); err != nil {
			return "", fmt.Errorf("not writable (pipeline.checkpoint_dir): %w", err)
		}
		return "writable", nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("pipeline.checkpoint_dir: %w", err)
	}
	parent := filepath.Clean(dir)
	for {
		next := filepath.Dir(parent)
		if next == parent {
			return "", fmt.Errorf("no existing parent directory of %s (pipeline.checkpoint_dir)", dir)
		}
		parent = next
		fi, err := os.Stat(parent)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("pipeline.checkpoint_dir: %w", err)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%s, a parent of %s, is not a directory (pipeline.checkpoint_dir)", parent, dir)
		}
		if err := probe(parent); err != nil {
			return "", fmt.Errorf("missing, and its parent %s is not writable (pipeline.checkpoint_dir): %w", parent, err)
		}
		if abs, err := filepath.Abs(parent); err == nil {
			parent = abs // "its parent ." says little
		}
		return "missing; will be created (its parent " + parent + " is writable)", nil
	}
}

// redactURLErr takes the password of the URL raw out of err's text.
func redactURLErr(err error, raw string) error {
	u, perr := url.Parse(raw)
	if perr != nil || u.User == nil {
		return err
	}
	pass, ok := u.User.Password()
	if !ok || pass == "" || !strings.Contains(err.Error(), pass) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pass, "xxxxx"))
}

// readBucket reads the bucket the way tsrep reads its output back
// (influx.query_language): an InfluxQL count on /query, or a Flux range.
func readBucket(ctx context.Context, cfg config.Config, client influxdb2.Client, ic sinks.InfluxConfig) error {
	if cfg.Influx.QueryLanguage != "flux" {
		q, err := query.Open(query.Options{
			URL: ic.URL, Token: ic.Token, Org: ic.Org, Bucket: ic.Bucket,
			Prefix: cfg.Influx.MeasurementPrefix, Language: query.InfluxQL, Timeout: cfg.Influx.Timeout.Duration,
		})
		if err != nil {
			return err
		}
		defer q.Close()
		_, err = q.EmbeddingCount(ctx, cfg.Model.Name)
		return err
	}
	flux := fmt.Sprintf("from(bucket: %q) |> range(start: -1m) |> limit(n: 1)", ic.Bucket)
	res, err := client.QueryAPI(ic.Org).Query(ctx, flux)
	if err != nil {
		return err
	}
	for res.Next() {
	}
	err = res.Err()
	res.Close()
	return err
}

// bucketMissing says whether err, from reading the bucket, means that it
// does not exist: InfluxDB 1.8 answers a Flux query on a missing database
// with "no database" (InfluxQL: "database not found"), 2.x with
// `bucket "x" not found`. A missing retention policy ("invalid retention
// policy") is not one: create_bucket does not create those.
func bucketMissing(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no database") || strings.Contains(s, "database not found") ||
		strings.Contains(s, "not found") && !strings.Contains(s, "retention policy")
}

func explainInflux(err error) error {
	if s := strings.ToLower(err.Error()); strings.Contains(s, "401") || strings.Contains(s, "unauthorized") || strings.Contains(s, "403") {
		return fmt.Errorf("%w: check the environment variable named by influx.token_env", err)
	}
	return err
}

// repartitionCheck says what kafka.repartition would do now (without
// waiting for data, creating or committing anything), and warns when the
// input read directly is not keyed by series.
func repartitionCheck(ctx context.Context, cfg config.Config) Check {
	c := Check{What: "kafka.repartition = " + cfg.Kafka.Repartition}
	cluster, err := ingest.NewCluster(cfg.Kafka)
	if err != nil {
		c.Err = err
		return c
	}
	d, err := repartition.Decide(ctx, cluster, cfg, true, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		c.Err = err
		return c
	}
	c.Note = "read the topics directly: " + d.Why
	if d.Repartition {
		c.Note = "repartition through " + cfg.RepartitionTopic() + " (group " + cfg.RepartitionGroup() + "): " + d.Why
	}
	if !d.Repartition {
		r := d.Report
		if r == nil {
			s, err := repartition.Sample(ctx, cluster, cfg, repartition.SampleMessages)
			if err == nil {
				r = &s
			}
		}
		if r != nil && r.Unkeyed() {
			c.Warning = "the input is not keyed by series: " + r.String() + "; " + d.Why
		}
	}
	if d.Warning != "" {
		c.Warning = d.Warning
	}
	return c
}
