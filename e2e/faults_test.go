package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// reference runs msgs through tsrep once, on a broker and database of its
// own, and returns the points it wrote.
func reference(ctx context.Context, t *testing.T, msgs []feed.Message, mod func(*config.Config)) []string {
	t.Helper()
	b := startBroker(t, broker.Options{})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "nab", "tsrep", db)
	mod(&c)
	produce(ctx, t, c, msgs)
	startTsrep(t, nil, "run", "--until-end", "-c", writeConfig(t, c)).wait(t, 3*time.Minute)
	return points(ctx, t, db)
}

// offsets returns the group's committed offsets and the topic's end offsets.
func offsets(ctx context.Context, t *testing.T, c config.Config) (committed, end map[int]int64) {
	t.Helper()
	kc := ingest.NewClient(c.Kafka.Brokers, nil)
	end, err := ingest.EndOffsets(ctx, kc, c.Kafka.Topics[0])
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]int, 0, len(end))
	for p := range end {
		parts = append(parts, p)
	}
	resp, err := kc.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.Kafka.Group, Topics: map[string][]int{c.Kafka.Topics[0]: parts}})
	if err != nil {
		t.Fatal(err)
	}
	committed = map[int]int64{}
	for _, p := range resp.Topics[c.Kafka.Topics[0]] {
		committed[p.Partition] = p.CommittedOffset
	}
	return committed, end
}

// waitCaughtUp waits until the group has committed every partition's end.
func waitCaughtUp(ctx context.Context, t *testing.T, c config.Config, p *proc, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		committed, end := offsets(ctx, t, c)
		done := true
		for part, e := range end {
			if e > 0 && committed[part] != e {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("not caught up within %s:\n%s", d, tail(p.log.String()))
}

// stop sends SIGTERM and expects a clean exit within the shutdown timeout.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)
}

// rss is the process's resident set size.
func rss(t *testing.T, pid int) int64 { return procStatus(t, pid, "VmRSS:") }

// peakRSS is the process's highest resident set size so far.
func peakRSS(t *testing.T, pid int) int64 { return procStatus(t, pid, "VmHWM:") }

func procStatus(t *testing.T, pid int, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// TestInfluxOutage stops influxd for 30 s in the middle of a stream: tsrep
// holds back (no commits, bounded memory, retries logged and counted),
// resumes when InfluxDB returns, and loses nothing.
func TestInfluxOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	ctx := testenv.Context(t, 10*time.Minute)
	msgs := testenv.NABMessages(t, cloudwatch...)
	want := reference(ctx, t, msgs, func(*config.Config) {})

	b := startBroker(t, broker.Options{})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "nab", "tsrep", db)
	port, _ := testenv.FreePort()
	c.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	half := len(msgs) / 2
	produce(ctx, t, c, msgs[:half])
	p := startTsrep(t, nil, "run", "-c", writeConfig(t, c))
	waitCaughtUp(ctx, t, c, p, 2*time.Minute)
	readyz := "http://" + c.HTTP.Listen + "/readyz"
	waitFor(t, 30*time.Second, "/readyz 200 before the outage", func() bool { code, _ := get(t, readyz); return code == 200 })

	testenv.StopInflux(t)
	outage := time.Now()
	// /readyz is not latched (#13 item 6): it probes InfluxDB and says why.
	waitFor(t, 20*time.Second, "/readyz to fail while InfluxDB is away", func() bool { code, _ := get(t, readyz); return code == 503 })
	if _, body := get(t, readyz); !strings.Contains(strings.ToLower(body), "influx") {
		t.Errorf("/readyz during the outage does not name InfluxDB: %q", body)
	}
	produce(ctx, t, c, msgs[half:]) // the stream goes on while InfluxDB is away
	time.Sleep(5 * time.Second)     // commits already in flight settle
	before, _ := offsets(ctx, t, c)
	rss0 := rss(t, p.cmd.Process.Pid)
	time.Sleep(30*time.Second - time.Since(outage))
	after, end := offsets(ctx, t, c)
	rss1 := rss(t, p.cmd.Process.Pid)
	errs := metric(t, c.HTTP.Listen, "tsrep_sink_errors_total")
	testenv.RestartInflux(t)

	for part := range end {
		if after[part] != before[part] {
			t.Errorf("partition %d: offset committed during the outage (%d → %d)", part, before[part], after[part])
		}
	}
	behind := false
	for part, e := range end {
		behind = behind || after[part] < e
	}
	if !behind {
		t.Fatal("the group caught up during the outage: nothing was held back")
	}
	if errs == 0 || !strings.Contains(p.log.String(), "retrying") {
		t.Fatalf("the outage was neither counted (tsrep_sink_errors_total %v) nor logged:\n%s", errs, tail(p.log.String()))
	}
	if grow := rss1 - rss0; grow > 64<<20 {
		t.Errorf("RSS grew by %d MiB during the outage: unbounded buffering", grow>>20)
	}
	t.Logf("outage: %v failed writes, RSS %d → %d MiB, commits held at %v", errs, rss0>>20, rss1>>20, after)

	waitCaughtUp(ctx, t, c, p, 2*time.Minute)
	waitFor(t, 30*time.Second, "/readyz 200 after the outage", func() bool { code, _ := get(t, readyz); return code == 200 })
	p.stop(t)
	finish(t, c)
	compare(t, "influx outage", want, points(ctx, t, db))
}

// TestBrokerRestartAndFaults restarts the broker (with its data on disk)
// mid-stream, and injects failed fetches, failed commits and dropped
// connections: tsrep reconnects and loses nothing.
func TestBrokerRestartAndFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	ctx := testenv.Context(t, 10*time.Minute)
	msgs := testenv.NABMessages(t, cloudwatch...)
	want := reference(ctx, t, msgs, func(*config.Config) {})

	dataDir := t.TempDir()
	port, _ := testenv.FreePort()
	opts := broker.Options{Port: port, DataDir: dataDir}
	b := startBroker(t, opts)
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "nab", "tsrep", db)
	third := len(msgs) / 3
	produce(ctx, t, c, msgs[:third])
	p := startTsrep(t, nil, "run", "-c", writeConfig(t, c))
	waitCaughtUp(ctx, t, c, p, 2*time.Minute)

	// Restart the broker: its log and the group's offsets come back from disk.
	b.Close()
	time.Sleep(2 * time.Second)
	b2 := startBroker(t, opts)
	produce(ctx, t, c, msgs[third:2*third])

	// Faults: failed fetches and commits, and connections dropped on fetch.
	cl := b2.Cluster()
	fetchFaults := cl.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.UnknownServerError, Count: 15})
	commitFaults := cl.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.CoordinatorNotAvailable, Count: 3})
	drops := 0
	cl.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		drops++
		if drops%7 == 0 && drops <= 70 {
			return nil, errors.New("dropped by the test"), true
		}
		return nil, nil, false
	})
	produce(ctx, t, c, msgs[2*third:])
	waitCaughtUp(ctx, t, c, p, 3*time.Minute)
	p.stop(t)
	finish(t, c)
	t.Logf("faults: %d failed fetches, %d failed commits, %d fetches seen (every 7th of the first 70 dropped its connection)",
		fetchFaults.Hits(), commitFaults.Hits(), drops)
	if fetchFaults.Hits() == 0 {
		t.Fatal("no fetch fault was hit")
	}
	compare(t, "broker restart and faults", want, points(ctx, t, db))
}
