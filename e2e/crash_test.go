package e2e

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
)

// TestCrashRecovery streams NAB through the tsrep binary while killing it
// with SIGKILL at random moments, restarting it each time; in the end
// InfluxDB must hold exactly the points of a run without crashes: no point
// missing, none extra, every value the same.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	ctx := testenv.Context(t, 10*time.Minute)
	msgs := testenv.NABMessages(t, cloudwatch...)

	// The reference: one uninterrupted run.
	refBroker := startBroker(t, broker.Options{})
	refDB := testenv.StartInflux(t)
	ref := baseConfig(t, refBroker.Addr(), "nab", "tsrep", refDB)
	produce(ctx, t, ref, msgs)
	startTsrep(t, nil, "run", "--until-end", "-c", writeConfig(t, ref)).wait(t, 3*time.Minute)
	want := points(ctx, t, refDB)

	// The same stream, produced in chunks while tsrep is killed and
	// restarted, so kills land in start-up, fetching, learning, writing,
	// checkpointing and committing.
	b := startBroker(t, broker.Options{})
	db := testenv.StartInflux(t)
	c := baseConfig(t, b.Addr(), "nab", "tsrep", db)
	path := writeConfig(t, c)
	rng := rand.New(rand.NewPCG(20261127, 5))
	const rounds = 24
	chunk := (len(msgs) + rounds - 1) / rounds
	kills := 0
	for i := 0; i < rounds; i++ {
		produce(ctx, t, c, msgs[i*chunk:min((i+1)*chunk, len(msgs))])
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
	settle(t, c)
	startTsrep(t, nil, "run", "--until-end", "-c", path).wait(t, 3*time.Minute)
	t.Logf("%d SIGKILLs over %d messages", kills, len(msgs))
	compare(t, "crash recovery", want, points(ctx, t, db))
}
