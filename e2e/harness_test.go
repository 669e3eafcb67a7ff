// Package e2e holds the fault tests: the tsrep binary as a subprocess,
// killed, restarted, starved of InfluxDB, moved between instances, against
// a Kafka-protocol broker over TCP and a real influxd.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

var tsrepBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tsrep-e2e-bin-")
	if err != nil {
		panic(err)
	}
	tsrepBin = filepath.Join(dir, "tsrep")
	build := exec.Command("go", "build", "-o", tsrepBin, "github.com/tsrep/tsrep/cmd/tsrep")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tsrep:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	testenv.Main(m)
}

// startBroker starts a broker whose groups may use short session timeouts,
// so a killed instance's partitions move on within seconds.
func startBroker(t *testing.T, o broker.Options) *broker.Broker {
	t.Helper()
	o.Extra = append(o.Extra, kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(maxMessageBytes)}))
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	return testenv.StartBroker(t, o)
}

// baseConfig is a configuration for a test run: fast checkpoints, short
// session timeout, no ops endpoint.
func baseConfig(t *testing.T, brokerAddr, topic, group string, in testenv.Influx) config.Config {
	t.Helper()
	c := config.Default()
	c.Kafka.Brokers = []string{brokerAddr}
	c.Kafka.Topics = []string{topic}
	c.Kafka.Group = group
	c.Kafka.DeadLetterTopic = topic + "-dlq"
	c.Kafka.SessionTimeout = config.Duration{Duration: 2 * time.Second}
	c.Kafka.FetchMaxWait = config.Duration{Duration: 50 * time.Millisecond}
	c.Window.Length, c.Window.Stride = 32, 2
	c.Window.FlushInterval = config.Duration{Duration: 100 * time.Millisecond}
	c.Model.Order = 12
	c.Influx.URL = in.URL
	c.Influx.Bucket = in.Database
	c.Influx.BatchPoints = 2000
	c.Influx.RetryMaxInterval = config.Duration{Duration: time.Second}
	c.Pipeline.CheckpointDir = t.TempDir()
	// Checkpoints in Kafka: instances that take over each other's
	// partitions share no directory.
	c.Pipeline.StateStore = "kafka"
	c.Pipeline.CheckpointInterval = config.Duration{Duration: 300 * time.Millisecond}
	c.Pipeline.ShutdownTimeout = config.Duration{Duration: 10 * time.Second}
	c.HTTP.Listen = ""
	c.Log.Level = "info"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// writeConfig writes c as TOML.
func writeConfig(t *testing.T, c config.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatalf("written config does not load: %v\n%s", err, b.String())
	}
	return path
}

// proc is a running tsrep.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Len is the number of bytes written so far.
func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startTsrep runs the binary with args; it is killed when the test ends.
func startTsrep(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(tsrepBin, args...), log: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits; it reports whether the process was still
// running.
func (p *proc) kill() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
	return true
}

// exit waits up to d for the process to exit by itself and returns its
// error (a timeout kills it).
func (p *proc) exit(d time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("did not exit within %s", d)
	}
}

// wait waits for the process to exit by itself.
func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("tsrep exited with %v:\n%s", err, tail(p.log.String()))
		}
	case <-time.After(d):
		before := p.log.Len()
		t.Errorf("tsrep did not finish within %s:\n%s", d, tail(p.log.String()))
		t.Fatalf("its goroutines (SIGQUIT):\n%s", p.dump(before))
	}
}

// dump sends SIGQUIT, which makes the Go runtime print every goroutine's
// stack and exit, and returns what the process wrote after offset from
// (the dump), killing it if it has not exited within 10 s.
func (p *proc) dump(from int) string {
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		p.kill()
	}
	s := p.log.String()
	if from > len(s) {
		from = len(s)
	}
	return s[from:]
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

var cloudwatch = []string{
	"realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
	"realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv",
	"realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
	"realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv",
	"realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv",
	"realAWSCloudwatch/ec2_network_in_5abac7.csv",
	"realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv",
	"realAWSCloudwatch/grok_asg_anomaly.csv",
}

// maxMessageBytes is the brokers' message.max.bytes in these tests: room
// for 1 MiB messages.
const maxMessageBytes = 4 << 20

func produce(ctx context.Context, t *testing.T, c config.Config, msgs []feed.Message) {
	t.Helper()
	d, _ := ingest.NewDialer(c.Kafka)
	o := feed.ProduceOptions{Brokers: c.Kafka.Brokers, Dialer: d, Topic: c.Kafka.Topics[0], Partitions: 4, MaxBatchBytes: maxMessageBytes}
	if err := feed.Produce(ctx, o, msgs); err != nil {
		t.Fatal(err)
	}
}

// points reads every point of a database as "measurement,tags field=value
// time" lines, sorted.
func points(ctx context.Context, t *testing.T, in testenv.Influx) []string {
	t.Helper()
	c := influxdb2.NewClient(in.URL, "")
	defer c.Close()
	res, err := c.QueryAPI("").Query(ctx, fmt.Sprintf(`from(bucket: %q) |> range(start: 0)`, in.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var out []string
	for res.Next() {
		r := res.Record()
		var tags []string
		for k, v := range r.Values() {
			if s, ok := v.(string); ok && !strings.HasPrefix(k, "_") && k != "result" && k != "table" {
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

// finish runs the group once more to the end of the stream (--until-end):
// in a live run, the embeddings of the newest epochs wait for the group's
// next encoder version (until the slowest partition closes the epoch, or
// is idle for model.sync_idle); the run that ends the stream writes them,
// from the checkpoints, as the reference run (--until-end) did.
func finish(t *testing.T, c config.Config) {
	t.Helper()
	settle(t, c)
	startTsrep(t, nil, "run", "--until-end", "-c", writeConfig(t, c)).wait(t, 3*time.Minute)
}

// settle waits, after killing instances, until the broker has removed
// them from the learning and the repartition groups: both Empty (or never
// made). kfake (unlike Kafka, which schedules every member's session
// expiry when a join completes) starts a member's session timer only when
// its JoinGroup reply is delivered: an instance SIGKILLed while its
// JoinGroup was pending stays in the group with no timer, and if the next
// instance joins the same rebalance, the dead one keeps its share of the
// partitions for ever (the next instance heartbeats alone, the group never
// rebalances; twice in CI, TestRepartition/sigkill and TestCrashRecovery,
// with the goroutine dump showing the live member waiting on a generation
// that never ended). With no live member, that rebalance completes, every
// dead member's timer runs out, and the group empties; the next instance
// then joins alone.
func settle(t *testing.T, c config.Config) {
	t.Helper()
	d, err := ingest.NewDialer(c.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	cl := ingest.NewClient(c.Kafka.Brokers, d)
	groups := []string{c.Kafka.Group, c.RepartitionGroup()}
	start := time.Now()
	deadline := start.Add(time.Minute)
	for {
		var states []string
		resp, err := cl.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: groups})
		if err == nil {
			for _, g := range resp.Groups {
				switch {
				case errors.Is(g.Error, kafka.GroupIdNotFound): // never made
				case g.Error != nil:
					states = append(states, fmt.Sprintf("%s: %v", g.GroupID, g.Error))
				case g.GroupState != "Empty" && g.GroupState != "Dead":
					states = append(states, fmt.Sprintf("%s %s with %d members", g.GroupID, g.GroupState, len(g.Members)))
				}
			}
			if len(states) == 0 {
				t.Logf("the groups emptied %v after the kills", time.Since(start).Round(time.Millisecond))
				return
			}
		} else {
			states = []string{err.Error()}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the groups did not empty after the kills within a minute: %s", strings.Join(states, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// compare reports how many points differ between two sorted point sets.
func compare(t *testing.T, what string, want, got []string) {
	t.Helper()
	wantSet := make(map[string]bool, len(want))
	for _, p := range want {
		wantSet[p] = true
	}
	gotSet := make(map[string]bool, len(got))
	for _, p := range got {
		gotSet[p] = true
	}
	var missing, extra []string
	for _, p := range want {
		if !gotSet[p] {
			missing = append(missing, p)
		}
	}
	for _, p := range got {
		if !wantSet[p] {
			extra = append(extra, p)
		}
	}
	t.Logf("%s: %d points compared, %d differ (%d missing, %d unexpected)", what, len(want), len(missing)+len(extra), len(missing), len(extra))
	if len(want) == 0 {
		t.Fatalf("%s: the reference run wrote nothing", what)
	}
	if len(missing)+len(extra) > 0 {
		t.Errorf("%s: missing by series: %v", what, bySeries(missing))
		t.Errorf("%s: unexpected by series: %v", what, bySeries(extra))
		t.Fatalf("%s: first missing %v, first unexpected %v", what, head(missing), head(extra))
	}
}

// bySeries counts points by measurement and tag set.
func bySeries(points []string) map[string]int {
	out := map[string]int{}
	for _, p := range points {
		out[p[:strings.IndexByte(p, ' ')]]++
	}
	return out
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}
