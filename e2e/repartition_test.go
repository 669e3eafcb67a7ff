package e2e

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// Unkeyed input (issue 14): the bundled NAB series produced the way
// Telegraf's Kafka output writes without routing_tag (round robin over
// the partitions, one point per message, or several series per message)
// and read with kafka.repartition on must give, in InfluxDB, exactly the
// points of the same data produced keyed by series and read directly.

// nabByTimeAndSeries is the NAB stream in time order, the points of one
// time ordered by series: the order a keyed producer writes them in, and
// the order the repartition stage gives points of equal timestamps.
func nabByTimeAndSeries(t *testing.T) []feed.Message {
	msgs := slices.Clone(testenv.NABMessages(t, cloudwatch...))
	slices.SortStableFunc(msgs, func(a, b feed.Message) int {
		if a.Time != b.Time {
			if a.Time < b.Time {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.Key, b.Key)
	})
	return msgs
}

// produceUnkeyed writes msgs without keys, round robin over 4 partitions.
func produceUnkeyed(ctx context.Context, t *testing.T, c config.Config, msgs []feed.Message) {
	t.Helper()
	d, _ := ingest.NewDialer(c.Kafka)
	o := feed.ProduceOptions{Brokers: c.Kafka.Brokers, Dialer: d, Topic: c.Kafka.Topics[0], Partitions: 4, MaxBatchBytes: maxMessageBytes, Unkeyed: true}
	if err := feed.Produce(ctx, o, msgs); err != nil {
		t.Fatal(err)
	}
}

// byTimestamp groups msgs (in time order) into messages of at most n
// points of one timestamp each: several series per message, and a
// message boundary at every change of time.
func byTimestamp(msgs []feed.Message, n int) []feed.Message {
	var out []feed.Message
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && j-i < n && msgs[j].Time == msgs[i].Time {
			j++
		}
		out = append(out, feed.Batch(msgs[i:j], n)...)
		i = j
	}
	return out
}

// internalTopic maps the learning pipeline's partitions in tsrep_train's
// topic tag (the internal topic, with repartitioning) to the input
// topic's, the one difference a keyed run has.
func internalTopic(pts []string, c config.Config) []string {
	out := make([]string, len(pts))
	for i, p := range pts {
		if strings.HasPrefix(p, c.Influx.MeasurementPrefix+"train,") {
			p = strings.Replace(p, ",topic="+c.RepartitionTopic()+" ", ",topic="+c.Kafka.Topics[0]+" ", 1)
			p = strings.Replace(p, ",topic="+c.RepartitionTopic()+",", ",topic="+c.Kafka.Topics[0]+",", 1)
		}
		out[i] = p
	}
	slices.Sort(out)
	return out
}

// TestRepartition: the keyed reference, then the same data unkeyed, round
// robin one point per message and several series per message (messages
// that span two timestamps), read with kafka.repartition = "auto" (which
// must find the input unkeyed and repartition it); then the SIGKILL test
// of TestCrashRecovery on unkeyed input with repartitioning on, the kills
// landing in both stages. Every run must write the reference's points.
func TestRepartition(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	ctx := testenv.Context(t, 20*time.Minute)
	msgs := nabByTimeAndSeries(t)
	want := reference(ctx, t, msgs, func(c *config.Config) { c.Kafka.Repartition = "off" })

	unkeyed := func(t *testing.T, in []feed.Message) (config.Config, []string) {
		b := startBroker(t, broker.Options{})
		db := testenv.StartInflux(t)
		c := baseConfig(t, b.Addr(), "nab", "tsrep", db)
		c.Kafka.Repartition = "auto"
		produceUnkeyed(ctx, t, c, in)
		p := startTsrep(t, nil, "run", "--until-end", "-c", writeConfig(t, c))
		p.wait(t, 5*time.Minute)
		if !strings.Contains(p.log.String(), "the input is not keyed by series") {
			t.Fatalf("kafka.repartition = auto did not find the input unkeyed:\n%s", tail(p.log.String()))
		}
		return c, internalTopic(points(ctx, t, db), c)
	}
	t.Run("round-robin", func(t *testing.T) {
		c, got := unkeyed(t, msgs)
		debugInternal(ctx, t, c, msgs)
		compare(t, "unkeyed, round robin, repartitioned", want, got)
	})
	t.Run("several-series-per-message", func(t *testing.T) {
		c, got := unkeyed(t, feed.Batch(msgs, 3))
		_ = c
		compare(t, "unkeyed, 3 points per message, repartitioned", want, got)
	})
	t.Run("sigkill", func(t *testing.T) {
		in := byTimestamp(msgs, 3)
		b := startBroker(t, broker.Options{})
		db := testenv.StartInflux(t)
		c := baseConfig(t, b.Addr(), "nab", "tsrep", db)
		c.Kafka.Repartition = "always"
		path := writeConfig(t, c)
		rng := rand.New(rand.NewPCG(20261130, 14))
		const rounds = 24
		// Chunks end between two timestamps: a producer that pauses
		// within one (for longer than kafka.repartition_idle) lets the
		// stage write that timestamp's points before the rest come,
		// which a keyed producer's order would not.
		var bounds []int
		for i := 1; i < rounds; i++ {
			k := i * len(in) / rounds
			for k < len(in) && in[k].Time == in[k-1].Time {
				k++
			}
			bounds = append(bounds, k)
		}
		bounds = append(bounds, len(in))
		kills, from := 0, 0
		for i, to := range bounds {
			produceUnkeyed(ctx, t, c, in[from:to])
			from = to
			p := startTsrep(t, nil, "run", "-c", path)
			time.Sleep(time.Duration(50+rng.IntN(2500)) * time.Millisecond)
			if p.kill() {
				kills++
			} else {
				t.Fatalf("tsrep exited by itself in round %d:\n%s", i, tail(p.log.String()))
			}
		}
		if kills < 20 {
			t.Fatalf("only %d kills", kills)
		}
		finish(t, c)
		debugInternal(ctx, t, c, msgs)
		t.Logf("%d SIGKILLs over %d unkeyed messages", kills, len(in))
		compare(t, "crash recovery, unkeyed, repartitioned", want, internalTopic(points(ctx, t, db), c))
	})
}
