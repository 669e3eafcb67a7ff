package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/clock"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/sinks"
)

// journal records, in order, what the fakes of the writing stage's
// collaborators were asked to do.
type journal struct {
	mu      sync.Mutex
	entries []string
	lines   int
}

func (j *journal) add(format string, a ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, a...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

type fakeSink struct{ j *journal }

func (f fakeSink) Write(_ context.Context, lines []byte) ([]sinks.Rejected, error) {
	n := strings.Count(string(lines), "\n")
	f.j.mu.Lock()
	f.j.lines += n
	f.j.mu.Unlock()
	f.j.add("write %d", n)
	return nil, nil
}

type fakeDLQ struct {
	j    *journal
	fail func() error
}

func (f fakeDLQ) Write(_ context.Context, dls []ingest.DeadLetter) error {
	if f.fail != nil {
		if err := f.fail(); err != nil {
			f.j.add("dead letters failed")
			return err
		}
	}
	for _, d := range dls {
		f.j.add("dead letter %s offset %d", d.Reason, d.Offset)
	}
	return nil
}

type fakeStore struct {
	j    *journal
	mu   sync.Mutex
	body map[string][]byte
	fail func() error
}

func (f *fakeStore) Load(_ context.Context, topic string, part int) ([]byte, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.body[fmt.Sprint(topic, part)]
	return b, ok, nil
}

func (f *fakeStore) Save(_ context.Context, topic string, part int, body []byte) error {
	if f.fail != nil {
		if err := f.fail(); err != nil {
			f.j.add("checkpoint failed")
			return err
		}
	}
	f.mu.Lock()
	if f.body == nil {
		f.body = map[string][]byte{}
	}
	f.body[fmt.Sprint(topic, part)] = bytes.Clone(body) // the caller reuses body
	f.mu.Unlock()
	f.j.add("checkpoint")
	return nil
}

func (f *fakeStore) Where(topic string, part int) string { return fmt.Sprint("fake ", topic, part) }

type fakeCommitter struct{ j *journal }

func (f fakeCommitter) Commit(_ string, _ int, next int64) error {
	f.j.add("commit %d", next)
	return nil
}

// chanSource serves the messages sent on it, and io.EOF once it is closed.
type chanSource chan ingest.Message

func (c chanSource) Fetch(ctx context.Context) (ingest.Message, error) {
	select {
	case m, ok := <-c:
		if !ok {
			return ingest.Message{}, io.EOF
		}
		return m, nil
	case <-ctx.Done():
		return ingest.Message{}, ctx.Err()
	}
}

// stageRig is one partition's stages with fake collaborators and a fake
// clock.
type stageRig struct {
	t     *testing.T
	j     *journal
	clk   *clock.Fake
	p     *Pipeline
	pt    *partition
	src   chanSource
	store *fakeStore
	dlq   *fakeDLQ
	done  chan error
	next  int64
	// progress counts the messages the windowing stage has handled.
	progress Progress
}

func newStageRig(t *testing.T, mod func(*config.Config)) *stageRig {
	return newStageRigWith(t, mod, nil, -1)
}

// newStageRigWith is newStageRig with setup run on the pipeline before the
// partition is built, and the partition reading until offset end (>= 0:
// as an UntilEnd run does, staying after it).
func newStageRigWith(t *testing.T, mod func(*config.Config), setup func(*Pipeline), end int64) *stageRig {
	cfg := config.Default()
	cfg.Window.Length, cfg.Window.Stride = 8, 4
	cfg.Window.IntervalText = "1s"
	cfg.Window.BatchSize = 4
	cfg.Model.Kind, cfg.Model.Order = "rls", 2
	cfg.Pipeline.CheckpointInterval = config.Duration{Duration: time.Minute}
	cfg.Window.FlushInterval = config.Duration{Duration: time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &stageRig{t: t, j: &journal{}, clk: clock.NewFake(time.Unix(1e9, 0)), src: make(chanSource, 64), done: make(chan error, 1)}
	r.store = &fakeStore{j: r.j}
	r.dlq = &fakeDLQ{j: r.j}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(Options{Config: cfg, Log: log, Sink: fakeSink{r.j}, DeadLetters: r.dlq, State: r.store, Clock: r.clk, Progress: &r.progress})
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	if setup != nil {
		setup(p)
	}
	r.pt, err = p.newPartition(partitionID{"t", 0}, r.store, fakeCommitter{r.j})
	if err != nil {
		t.Fatal(err)
	}
	r.pt.win.hold = end >= 0
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.done <- r.pt.run(ctx, ctx, r.src, 0, end)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
		r.pt.close()
	})
	r.clk.BlockUntil(2) // the flush and checkpoint tickers
	return r
}

// send feeds one message at event time sec (seconds).
func (r *stageRig) send(value string) {
	r.src <- ingest.Message{Topic: "t", Offset: r.next, HighWaterMark: r.next + 1, Time: time.Unix(1e9, 0), Value: []byte(value)}
	r.next++
}

func (r *stageRig) point(series string, sec int, v float64) {
	r.send(fmt.Sprintf("m,s=%s v=%v %d", series, v, int64(1e9+sec)*int64(time.Second)))
}

// tick advances the clock by d once every message sent is handled.
func (r *stageRig) tick(d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.progress.Messages.Load() < r.next {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d messages handled", r.progress.Messages.Load(), r.next)
		}
		time.Sleep(time.Millisecond)
	}
	r.clk.Advance(d)
}

// await waits until the journal's last entry is want (the stages run
// asynchronously; this waits on the outcome, it does not sleep to let
// them settle).
func (r *stageRig) await(want string) []string {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e := r.j.all()
		if len(e) > 0 && e[len(e)-1] == want {
			return e
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waited for %q; journal: %q", want, e)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStagesOrderWritesBeforeCheckpointBeforeCommit: every checkpoint is
// saved after the results and dead letters of the messages it covers, and
// its offset committed only after it is saved; checkpoints run on the
// injected clock's ticker.
func TestStagesOrderWritesBeforeCheckpointBeforeCommit(t *testing.T) {
	r := newStageRig(t, nil)
	for i := 0; i < 20; i++ {
		r.point("a", i, float64(i%5))
	}
	r.send("this is not line protocol")
	for i := 20; i < 40; i++ {
		r.point("a", i, float64(i%5))
	}
	r.tick(time.Minute)
	e := r.await("commit 41")
	want := []string{"write", "dead letter syntax offset 20", "checkpoint", "commit 41"}
	i := 0
	for _, x := range e {
		if i < len(want) && strings.HasPrefix(x, want[i]) {
			i++
		} else if strings.HasPrefix(x, "checkpoint") || strings.HasPrefix(x, "commit") {
			t.Fatalf("%q out of order: %q", x, e)
		}
	}
	if i != len(want) {
		t.Fatalf("journal %q, want in order %q", e, want)
	}
	if r.j.lines == 0 {
		t.Fatal("no result was written")
	}
	// Nothing new: the next tick writes no checkpoint.
	r.tick(time.Minute)
	r.point("a", 40, 1)
	r.tick(time.Minute)
	e = r.await("commit 42")
	if n := strings.Count(strings.Join(e, "|"), "checkpoint"); n != 2 {
		t.Fatalf("%d checkpoints, want 2: %q", n, e)
	}
}

// TestStagesRetryAFailingCheckpoint: a checkpoint that cannot be written is
// retried with backoff (on the injected clock); meanwhile the partition
// reports "retrying", /readyz says why, nothing is committed; when the
// cause goes the partition resumes by itself.
func TestStagesRetryAFailingCheckpoint(t *testing.T) {
	var failing sync.Mutex
	broken := true
	r := newStageRig(t, nil)
	r.store.fail = func() error {
		failing.Lock()
		defer failing.Unlock()
		if broken {
			return errors.New("no space left on device")
		}
		return nil
	}
	r.p.o.Health.SetConnected()
	for i := 0; i < 12; i++ {
		r.point("a", i, float64(i))
	}
	r.tick(time.Minute)
	r.await("checkpoint failed")
	ok, why := r.p.o.Health.Ready()
	if ok || !strings.Contains(strings.Join(why, " "), "no space left on device") {
		t.Fatalf("ready %v %q while checkpoints fail", ok, why)
	}
	for k := 0; k < 3; k++ { // backoff on the fake clock: each retry fails again
		n := len(r.j.all())
		r.tick(time.Minute)
		for len(r.j.all()) == n {
			time.Sleep(time.Millisecond)
		}
		r.await("checkpoint failed")
	}
	for _, e := range r.j.all() {
		if strings.HasPrefix(e, "commit") {
			t.Fatalf("committed while the checkpoint fails: %q", r.j.all())
		}
	}
	failing.Lock()
	broken = false
	failing.Unlock()
	r.tick(time.Minute)
	r.await("commit 12")
	if ok, why := r.p.o.Health.Ready(); !ok {
		t.Fatalf("not ready after the checkpoint succeeded: %q", why)
	}
}

// TestStagesExitOnFailure: with pipeline.on_failure = "exit" the first
// failure stops the partition with an error naming the setting.
func TestStagesExitOnFailure(t *testing.T) {
	r := newStageRig(t, func(c *config.Config) { c.Pipeline.OnFailure = "exit" })
	r.dlq.fail = func() error { return errors.New("record too large") }
	r.send("bad line")
	r.tick(time.Minute)
	var err error
	select {
	case err = <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the partition did not stop; journal %q", r.j.all())
	}
	if err == nil || !strings.Contains(err.Error(), "on_failure") || !strings.Contains(err.Error(), "record too large") {
		t.Fatalf("run ended with %v", err)
	}
	for _, e := range r.j.all() {
		if strings.HasPrefix(e, "commit") || e == "checkpoint" {
			t.Fatalf("progress after the failure: %q", r.j.all())
		}
	}
}

// TestStagesCommitTheEndAfterTheDeferredWindows: a partition sharing the
// group's encoder that reaches its end while its windows wait for the
// other partitions' contributions commits the end offset only after those
// windows' embeddings are written. An UntilEnd run stops once the group's
// committed offsets are at their ends; committed earlier, a member leaving
// in between could end the run with the embeddings never written.
func TestStagesCommitTheEndAfterTheDeferredWindows(t *testing.T) {
	const n = 120 // messages: two minutes of data, epochs of 20 s
	var se *sharedEncoder
	final := make(chan struct{}) // the partition has written everything
	r := newStageRigWith(t, func(c *config.Config) {
		c.Model.Kind = "ssl"
		c.Model.Epoch = config.Duration{Duration: 20 * time.Second}
		c.Model.EmbedEvery, c.Model.TrainEvery = 1, 1
		c.Model.Order = 4
	}, func(p *Pipeline) {
		var err error
		se, err = memSharedEncoder(p.cfg, []string{memberName("t", 0), memberName("t", 1)})
		if err != nil {
			t.Fatal(err)
		}
		p.se = se
		p.env.onFinal = func(partitionID) { close(final) }
	}, n)
	for i := 0; i < n; i++ {
		r.point("a", i, math.Sin(float64(i)/3))
	}
	// Partition t/1 has not closed the first epoch: t/0's windows of the
	// later ones wait, and at its end t/0 waits for the group's versions.
	id := partitionID{"t", 0}
	waiting := func() bool {
		h := r.p.env.health
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.part(id).state == stateWaiting
	}
	deadline := time.Now().Add(10 * time.Second)
	for !waiting() {
		if time.Now().After(deadline) {
			t.Fatalf("partition t/0 is not waiting for the group; journal %q", r.j.all())
		}
		time.Sleep(time.Millisecond)
	}
	for _, e := range r.j.all() {
		if e == fmt.Sprintf("commit %d", n) {
			t.Fatalf("the end is committed while windows wait for the group's encoder: %q", r.j.all())
		}
	}
	r.j.mu.Lock()
	before := r.j.lines
	r.j.mu.Unlock()
	// t/1 goes idle: every version comes, the waiting windows are
	// embedded and written, then the end is checkpointed and committed.
	if err := se.g.Publish(context.Background(), models.Close{Partition: memberName("t", 1), Epoch: math.MinInt64 + 1, Through: math.MinInt64 + 1, Idle: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-final:
	case <-time.After(10 * time.Second):
		t.Fatalf("the partition did not finish; journal %q", r.j.all())
	}
	e := r.j.all()
	end := slices.Index(e, fmt.Sprintf("commit %d", n))
	lastWrite := -1
	for i, x := range e {
		if strings.HasPrefix(x, "write") {
			lastWrite = i
		}
	}
	if end < 0 || lastWrite > end || e[end-1] != "checkpoint" {
		t.Fatalf("journal %q: want the waiting windows written, then the checkpoint, then the end committed", e)
	}
	r.j.mu.Lock()
	after := r.j.lines
	r.j.mu.Unlock()
	if after <= before {
		t.Fatalf("%d lines written before the group's versions came and %d after: the waiting windows were not written", before, after)
	}
}
