package throughput

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/pipeline"
)

// Consume is phase (a): a consumer group member that reads every assigned
// partition to the end offset it had when assigned, discarding the
// messages, then commits: the ceiling of what any kafka-go consumer does
// with the same readers tsrep uses.
func Consume(ctx context.Context, brokers []string, topic, group string, timing *pipeline.Timing, log *slog.Logger) (int64, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	client := ingest.NewClient(brokers, nil)
	var total int64
	var runErr error
	err := ingest.RunGroup(ctx, ingest.GroupConfig{Brokers: brokers, Topics: []string{topic}, Group: group, SessionTimeout: 30 * time.Second, Log: log},
		func(gctx context.Context, g *ingest.Generation) {
			defer stop()
			ends, err := ingest.EndOffsets(gctx, client, topic)
			if err != nil {
				runErr = err
				return
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, a := range g.Assignments {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if timing != nil {
						timing.FirstAssigned.CompareAndSwap(0, time.Now().UnixNano())
					}
					start := a.Committed
					if start < 0 {
						start, err = ingest.ResolveOffset(gctx, client, topic, a.Partition, ingest.StartEarliest, time.Time{})
						if err != nil {
							mu.Lock()
							runErr = errors.Join(runErr, err)
							mu.Unlock()
							return
						}
					}
					end := ends[a.Partition]
					n := int64(0)
					if start < end {
						r, err := ingest.NewPartitionReader(brokers, nil, topic, a.Partition, start, 8<<20, 250*time.Millisecond)
						if err != nil {
							mu.Lock()
							runErr = errors.Join(runErr, err)
							mu.Unlock()
							return
						}
						for next := start; next < end; {
							m, err := r.FetchMessage(gctx)
							if err != nil {
								mu.Lock()
								runErr = errors.Join(runErr, err)
								mu.Unlock()
								r.Close()
								return
							}
							next = m.Offset + 1
							n++
						}
						r.Close()
					}
					if err := g.Commit(topic, a.Partition, end); err != nil {
						mu.Lock()
						runErr = errors.Join(runErr, err)
						mu.Unlock()
						return
					}
					if timing != nil {
						timing.LastCommit.Store(time.Now().UnixNano())
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}()
			}
			wg.Wait()
		})
	return total, errors.Join(runErr, err)
}
