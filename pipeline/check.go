package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
)

// Check is the outcome of one pre-flight check.
type Check struct {
	What string
	Err  error
	Note string
}

// Preflight checks what a run needs without consuming or writing anything:
// the Kafka brokers and topics (with TLS/SASL as configured), the InfluxDB
// server, credentials and bucket, and the checkpoint directory. It is what
// `tsrep run --dry-run` prints.
func Preflight(ctx context.Context, cfg config.Config, log *slog.Logger) []Check {
	var out []Check
	add := func(what string, err error, note string) { out = append(out, Check{What: what, Err: err, Note: note}) }

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
			for _, tp := range md.Topics {
				if tp.Error != nil {
					add("topic "+tp.Name, tp.Error, "")
				} else {
					add("topic "+tp.Name, nil, fmt.Sprintf("%d partitions", len(tp.Partitions)))
				}
			}
		}
	}

	ic := InfluxConfig(cfg)
	client := influxdb2.NewClientWithOptions(ic.URL, ic.Token, influxdb2.DefaultOptions().SetLogLevel(0))
	defer client.Close()
	if h, err := client.Health(ctx); err != nil {
		add("influxdb "+ic.URL, err, "")
	} else {
		v := "unknown"
		if h.Version != nil {
			v = *h.Version
		}
		add("influxdb "+ic.URL, nil, "version "+v)
		flux := fmt.Sprintf("from(bucket: %q) |> range(start: -1m) |> limit(n: 1)", ic.Bucket)
		res, err := client.QueryAPI(ic.Org).Query(ctx, flux)
		if err == nil {
			for res.Next() {
			}
			err = res.Err()
			res.Close()
		}
		switch {
		case err == nil:
			add("bucket "+ic.Bucket, nil, "readable")
		case ic.CreateBucket && strings.Contains(strings.ToLower(err.Error()), "not found"):
			add("bucket "+ic.Bucket, nil, "missing; will be created (influx.create_bucket)")
		default:
			add("bucket "+ic.Bucket, explainInflux(err), "")
		}
	}

	dir := filepath.Join(cfg.Pipeline.CheckpointDir, cfg.Kafka.Group)
	err = os.MkdirAll(dir, 0o755)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".preflight*"); err == nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	add("checkpoint_dir "+dir, err, "writable")
	return out
}

func explainInflux(err error) error {
	if s := strings.ToLower(err.Error()); strings.Contains(s, "401") || strings.Contains(s, "unauthorized") || strings.Contains(s, "403") {
		return fmt.Errorf("%w: check the environment variable named by influx.token_env", err)
	}
	return err
}
