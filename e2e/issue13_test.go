package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// TestOneBadMessageBoundedAndRedacted runs the binary on the inputs of
// issue 13 that used to crash it or vanish: one message of points 1 ns
// apart with window.interval = "auto" and lateness = 1h (the ring was sized
// for 3.6·10¹² slots: out of memory, and the same again after every
// restart), second-precision timestamps read as nanoseconds (counted as
// duplicates only), a point near the largest timestamp, and JSON-ish names
// in line protocol. The process stays up and small, commits everything,
// dead-letters what it cannot use with its reason, and never logs the
// password of influx.url.
func TestOneBadMessageBoundedAndRedacted(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	ctx := testenv.Context(t, 5*time.Minute)
	b := startBroker(t, broker.Options{})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "issue13", "tsrep", db)
	c.Window.IntervalText = "auto"
	c.Window.Lateness = config.Duration{Duration: time.Hour}
	const secret = "influx-url-password"
	c.Influx.URL = strings.Replace(db.URL, "http://", "http://tsrep:"+secret+"@", 1)
	port, _ := testenv.FreePort()
	c.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", port)

	now := time.Now().UnixNano()
	var msgs []feed.Message
	// Seconds written as nanoseconds, with message times in the same
	// (wrong) units: nothing tells them apart, and they are 1 ns apart.
	var ns strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&ns, "ring,s=1 v=%d %d\n", i%7, 1_700_000_000+i)
	}
	msgs = append(msgs, feed.Message{Key: []byte("ring,s=1"), Value: []byte(ns.String()), Time: 1_700_000_049})
	// Seconds read as nanoseconds, produced now: dead-lettered as precision.
	for i := 0; i < 5; i++ {
		msgs = append(msgs, feed.Message{Key: []byte("prec,s=1"), Value: []byte(fmt.Sprintf("prec,s=1 v=1 %d", now/1e9+int64(i))), Time: now})
	}
	// The largest timestamps InfluxDB takes, and one past it.
	maxT := ingest.MaxTime
	msgs = append(msgs, feed.Message{Key: []byte("end,s=1"), Value: []byte(fmt.Sprintf("end,s=1 v=1 %d\nend,s=1 v=2 %d", maxT, maxT+1)), Time: now})
	// Line-protocol NaN.
	msgs = append(msgs, feed.Message{Key: []byte("nan,s=1"), Value: []byte("nan,s=1 v=NaN 1700000000000000000"), Time: 1_700_000_000_000_000_000})
	// An ordinary series, so something lands (past the hour of lateness).
	for i := 0; i < 3800; i++ {
		ts := int64(1_700_000_000_000_000_000) + int64(i)*int64(time.Second)
		msgs = append(msgs, feed.Message{Key: []byte("good,s=1"), Value: []byte(fmt.Sprintf("good,s=1 v=%d %d", i%11, ts)), Time: ts})
	}
	produce(ctx, t, c, msgs)

	p := startTsrep(t, nil, "run", "-c", writeConfig(t, c))
	waitCaughtUp(ctx, t, c, p, 2*time.Minute)
	peak := peakRSS(t, p.cmd.Process.Pid)
	counts := map[string]float64{
		"precision":     metric(t, c.HTTP.Listen, `tsrep_bad_input_total{reason="precision"}`),
		"bad_timestamp": metric(t, c.HTTP.Listen, `tsrep_bad_input_total{reason="bad_timestamp"}`),
		"non_finite":    metric(t, c.HTTP.Listen, `tsrep_bad_input_total{reason="non_finite_value"}`),
		"windows":       metric(t, c.HTTP.Listen, "tsrep_windows_total"),
	}
	p.stop(t)
	t.Logf("peak RSS %d MiB, counters %v", peak>>20, counts)
	if peak > 1<<30 {
		t.Errorf("peak RSS %d MiB", peak>>20)
	}
	if counts["precision"] != 5 || counts["bad_timestamp"] != 1 || counts["non_finite"] != 1 || counts["windows"] == 0 {
		t.Errorf("counters %v", counts)
	}
	dls, err := ingest.ReadDeadLetters(ctx, c.Kafka.Brokers, nil, c.Kafka.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	byReason := map[ingest.Reason]int{}
	for _, d := range dls {
		byReason[d.Reason]++
		if d.Reason == ingest.ReasonPrecision && !strings.Contains(d.Err, "kafka.precision") {
			t.Errorf("precision dead letter without the hint: %s", d.Err)
		}
		if d.Offset < 0 {
			t.Errorf("dead letter %s without its source offset", d.Reason)
		}
	}
	if byReason[ingest.ReasonPrecision] != 5 || byReason[ingest.ReasonBadTimestamp] != 1 || byReason[ingest.ReasonNonFinite] != 1 {
		t.Errorf("dead letters by reason: %v", byReason)
	}
	log := p.log.String()
	if strings.Contains(log, secret) {
		t.Errorf("the password of influx.url is in the log:\n%s", tail(log))
	}
	if !strings.Contains(log, "tsrep:xxxxx@") {
		t.Errorf("the log does not show the redacted URL:\n%s", tail(log))
	}
}

// TestDryRunCreatesNothingAndRedacts: --dry-run checks a missing
// checkpoint directory at its nearest existing parent and says it will be
// created (it used to create it), prints influx.url without its password,
// and warns about SASL PLAIN without TLS.
func TestDryRunCreatesNothingAndRedacts(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	b := startBroker(t, broker.Options{Topics: []string{"dry"}})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "dry", "tsrep", db)
	root := t.TempDir()
	c.Pipeline.StateStore = "dir" // the checkpoint directory is what it must not create
	c.Pipeline.CheckpointDir = filepath.Join(root, "not", "yet")
	const secret = "dry-run-password"
	c.Influx.URL = strings.Replace(db.URL, "http://", "http://tsrep:"+secret+"@", 1)

	dry := startTsrep(t, nil, "run", "--dry-run", "-c", writeConfig(t, c))
	dry.wait(t, time.Minute)
	out := dry.log.String()
	if strings.Contains(out, secret) || !strings.Contains(out, "ok    influxdb http://tsrep:xxxxx@") {
		t.Errorf("--dry-run output:\n%s", out)
	}
	if !strings.Contains(out, "ok    checkpoint_dir") || !strings.Contains(out, "will be created") {
		t.Errorf("--dry-run output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "not")); !os.IsNotExist(err) {
		t.Errorf("--dry-run created the checkpoint directory (stat: %v)", err)
	}

	c.Kafka.SASL = config.SASL{Mechanism: "plain", Username: "u", PasswordEnv: "DRY_RUN_KAFKA_PW"}
	sasl := startTsrep(t, []string{"DRY_RUN_KAFKA_PW=kafka-secret"}, "run", "--dry-run", "-c", writeConfig(t, c))
	_ = sasl.exit(time.Minute) // the broker has no SASL: its check fails
	if out := sasl.log.String(); !strings.Contains(out, "WARN  config: "+config.PlainSASLWarning) || strings.Contains(out, "kafka-secret") {
		t.Errorf("--dry-run with SASL PLAIN and no TLS:\n%s", out)
	}
}
