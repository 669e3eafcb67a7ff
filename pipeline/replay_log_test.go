package pipeline_test

import (
	"bytes"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tsrep/tsrep/feed"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/pipeline"
)

// lockedBuffer is a log destination the partitions' goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestReplayFilesLogAndRejects: a file replay's log names the files, not
// the topic its partitions are numbered under, and the bad messages it
// dead-letters are counted for the summary (RejectCounts).
func TestReplayFilesLogAndRejects(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	b := testenv.StartBroker(t, broker.Options{Partitions: 1})
	in := testenv.StartInflux(t)
	cfg := testConfig(t, b.Addr(), "replay-files", in)
	cfg.Window.Length, cfg.Window.Stride = 32, 4
	cfg.Model.Order = 12

	msgs := testenv.NABMessages(t, nabFiles[0])
	bad := []feed.Message{
		{Value: []byte("not line protocol at all"), Time: msgs[0].Time},
		{Value: []byte{}, Time: msgs[0].Time},
	}
	msgs = append(bad, msgs...)
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	p, closeAll, err := pipeline.Connect(ctx, cfg, pipeline.ServiceOptions{Log: log, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	const name = "ec2_cpu_utilization_24ae8d.csv"
	if err := p.ReplayFiles(ctx, []string{name}, cfg.Kafka.Topics[0], 2, feed.Between(msgs, time.Time{}, time.Time{})); err != nil {
		t.Fatal(err)
	}
	var replaying []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "msg=replaying") {
			replaying = append(replaying, l)
		}
	}
	if len(replaying) == 0 {
		t.Fatalf("no replaying line in the log:\n%s", logs.String())
	}
	for _, l := range replaying {
		if !strings.Contains(l, "files="+name) || strings.Contains(l, "topic=") {
			t.Errorf("log line %q: want the file, not the topic", l)
		}
	}

	badCounts, dead, err := pipeline.RejectCounts(reg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"syntax": 1, "empty_message": 1}
	if !maps.Equal(badCounts, want) || !maps.Equal(dead, want) {
		t.Errorf("bad input %v, dead-lettered %v; want %v for both", badCounts, dead, want)
	}
}
