package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/pipeline"
)

// nabFiles are five NAB streams over the same two weeks (5-minute CPU
// utilisation of EC2 and RDS instances).
var nabFiles = []string{
	"realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
	"realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv",
	"realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
	"realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv",
	"realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv",
}

// pointSet reads every point tagged run=run (all measurements) as
// "measurement,tags field=value time" lines without the run tag.
func pointSet(ctx context.Context, t *testing.T, url, db, run string) []string {
	t.Helper()
	c := influxdb2.NewClient(url, "")
	defer c.Close()
	res, err := c.QueryAPI("").Query(ctx, fmt.Sprintf(`from(bucket: %q) |> range(start: 0) |> filter(fn: (r) => r.run == %q)`, db, run))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var out []string
	for res.Next() {
		r := res.Record()
		var tags []string
		for k, v := range r.Values() {
			if s, ok := v.(string); ok && !strings.HasPrefix(k, "_") && k != "result" && k != "table" && k != "run" {
				tags = append(tags, k+"="+s)
			}
		}
		sort.Strings(tags)
		out = append(out, fmt.Sprintf("%s,%s %s=%v %d", r.Measurement(), strings.Join(tags, ","), r.Field(), r.Value(), r.Time().UnixNano()))
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestReplayKafkaRangeEqualsFileReplay: live run over NAB, then a sub-range
// replayed from Kafka and the same data replayed from the CSV files leave
// identical point sets; replaying again changes nothing.
func TestReplayKafkaRangeEqualsFileReplay(t *testing.T) {
	ctx := testenv.Context(t, 5*time.Minute)
	b := testenv.StartBroker(t, broker.Options{Partitions: 4})
	in := testenv.StartInflux(t)
	topic := "nab-replay"
	cfg := testConfig(t, b.Addr(), topic, in)
	cfg.Window.Length, cfg.Window.Stride = 32, 4
	cfg.Model.Order = 12

	msgs := testenv.NABMessages(t, nabFiles...)
	d, _ := ingest.NewDialer(cfg.Kafka)
	if err := feed.Produce(ctx, feed.ProduceOptions{Brokers: cfg.Kafka.Brokers, Dialer: d, Topic: topic, Partitions: 4}, msgs); err != nil {
		t.Fatal(err)
	}
	// The live run.
	if err := pipeline.RunService(ctx, cfg, pipeline.ServiceOptions{Log: testLogger(t), UntilEnd: true}); err != nil {
		t.Fatal(err)
	}

	from := time.Date(2014, 2, 18, 0, 0, 0, 0, time.UTC)
	to := time.Date(2014, 2, 24, 0, 0, 0, 0, time.UTC)
	replayKafka := func() {
		p, closeAll, err := pipeline.Connect(ctx, cfg, pipeline.ServiceOptions{Log: testLogger(t), ExtraTags: []ingest.KV{{Key: "run", Value: "kafka"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		ranges, err := p.KafkaRanges(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range ranges {
			n += r.Messages()
		}
		if want := len(feed.Between(msgs, from, to)); n != int64(want) {
			t.Fatalf("ranges hold %d messages, the files %d in [from, to)", n, want)
		}
		if err := p.Replay(ctx, ranges); err != nil {
			t.Fatal(err)
		}
	}
	replayKafka()

	p, closeAll, err := pipeline.Connect(ctx, cfg, pipeline.ServiceOptions{Log: testLogger(t), ExtraTags: []ingest.KV{{Key: "run", Value: "file"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ReplayMessages(ctx, topic, 4, testenv.NABMessages(t, nabFiles...), from, to); err != nil {
		t.Fatal(err)
	}
	closeAll()

	fromKafka := pointSet(ctx, t, in.URL, in.Database, "kafka")
	fromFile := pointSet(ctx, t, in.URL, in.Database, "file")
	if len(fromKafka) < 1000 {
		t.Fatalf("the Kafka replay wrote only %d points", len(fromKafka))
	}
	if !slices.Equal(fromKafka, fromFile) {
		t.Fatalf("replays differ: %d points from Kafka, %d from files; first difference: %s", len(fromKafka), len(fromFile), firstDiff(fromKafka, fromFile))
	}
	// Every point is inside the range (forecasts may be one step past it).
	for _, p := range fromKafka {
		var ts int64
		fmt.Sscan(p[strings.LastIndexByte(p, ' ')+1:], &ts)
		if ts < from.UnixNano() || ts > to.Add(5*time.Minute).UnixNano() {
			t.Fatalf("point outside the replayed range: %s", p)
		}
	}

	replayKafka()
	again := pointSet(ctx, t, in.URL, in.Database, "kafka")
	if !slices.Equal(fromKafka, again) {
		t.Fatalf("replaying again changed InfluxDB: %d points, then %d; first difference: %s", len(fromKafka), len(again), firstDiff(fromKafka, again))
	}
	t.Logf("%d points compared, 0 differ; a second replay left them unchanged", len(fromKafka))
}

func firstDiff(a, b []string) string {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return a[i] + " vs " + b[i]
		}
	}
	if len(a) != len(b) {
		return "one is a prefix of the other"
	}
	return "none"
}
