package e2e

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

var generationRE = regexp.MustCompile(`msg="consumer group generation" group=\S+ generation=\d+ partitions=(\d+)`)

// lastAssigned is the partition count of the process's latest generation.
func lastAssigned(p *proc) int {
	m := generationRE.FindAllStringSubmatch(p.log.String(), -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// TestRebalance runs two instances in one group over a 4-partition topic,
// kills one mid-stream, and checks that the other takes over its partitions
// with their state: the output equals a single instance's.
func TestRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	ctx := testenv.Context(t, 10*time.Minute)
	msgs := testenv.NABMessages(t, cloudwatch...)
	want := reference(ctx, t, msgs, func(*config.Config) {})

	b := startBroker(t, broker.Options{})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "nab", "tsrep", db)
	// Each instance has a checkpoint directory of its own (unused): the
	// partitions' state is in Kafka (pipeline.state_store = "kafka").
	path := writeConfig(t, c)
	c2 := c
	c2.Pipeline.CheckpointDir = t.TempDir()
	path2 := writeConfig(t, c2)
	third := len(msgs) / 3
	produce(ctx, t, c, msgs[:third])

	a := startTsrep(t, nil, "run", "-c", path)
	waitFor(t, time.Minute, "instance a to own all 4 partitions", func() bool { return lastAssigned(a) == 4 })
	bb := startTsrep(t, nil, "run", "-c", path2)
	waitFor(t, time.Minute, "the partitions to be shared 2 and 2", func() bool { return lastAssigned(a) == 2 && lastAssigned(bb) == 2 })
	produce(ctx, t, c, msgs[third:2*third])
	waitCaughtUp(ctx, t, c, bb, 2*time.Minute)

	produce(ctx, t, c, msgs[2*third:])
	time.Sleep(300 * time.Millisecond) // let both be mid-stream
	if !a.kill() {
		t.Fatalf("instance a exited by itself:\n%s", tail(a.log.String()))
	}
	waitFor(t, time.Minute, "instance b to take all 4 partitions", func() bool { return lastAssigned(bb) == 4 })
	assignedRe := regexp.MustCompile(`msg="partition assigned" topic=nab partition=(\d) start_offset=(\d+)`)
	// The generation is logged before its partitions start; a's may
	// already be caught up (committed to the end), so wait for b to start
	// them before waiting for the group to be caught up.
	waitFor(t, time.Minute, "instance b to start all 4 partitions", func() bool {
		return len(assignedRe.FindAllStringSubmatch(bb.log.String(), -1)) >= 6
	})
	waitCaughtUp(ctx, t, c, bb, 2*time.Minute)
	bb.stop(t)
	// After the kill, b started all four partitions past offset 0: from the
	// checkpoints, a's included.
	assigned := assignedRe.FindAllStringSubmatch(bb.log.String(), -1)
	if len(assigned) < 6 {
		t.Fatalf("b was assigned partitions %d times, want 2 then 4:\n%s", len(assigned), tail(bb.log.String()))
	}
	for _, m := range assigned[len(assigned)-4:] {
		if m[2] == "0" {
			t.Fatalf("b took partition %s from offset 0, not from its checkpoint:\n%s", m[1], tail(bb.log.String()))
		}
	}
	finish(t, c)
	compare(t, "rebalance", want, points(ctx, t, db))
}
