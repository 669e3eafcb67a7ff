package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tsrep/tsrep/ingest"
)

// writeStage makes each write job durable, in order: its results in
// InfluxDB, then its dead letters (with the results InfluxDB refused as bad
// data) in Kafka, then its checkpoint in the state store, then the commit
// of the offset the checkpoint covers. An offset is therefore committed
// only after everything derived from the messages before it is stored.
//
// A step that fails is retried with exponential backoff until it succeeds
// (pipeline.on_failure = "retry"; the partition's state says "retrying"
// meanwhile, and /readyz fails) or stops the process (on_failure =
// "exit"). InfluxDB writes retry inside the sink, for as long as it takes.
type writeStage struct {
	env   *stageEnv
	id    partitionID
	sink  Writer
	dlq   DeadLetterer
	store StateStore
	// commit, if set, commits the offset after a checkpoint (group mode).
	commit ingest.Committer
	marks  *marks
	in     <-chan *writeJob
	// bufs takes back line buffers for the learning stage to reuse; ckpts,
	// checkpoint buffers (the store keeps none after Save).
	bufs  chan<- []byte
	ckpts chan<- []byte
}

// run writes every job until the channel is closed. After a failure (ctx
// ended, or on_failure = "exit") the remaining jobs are dropped: what they
// held is redone from the last checkpoint by whoever owns the partition
// next.
func (s *writeStage) run(ctx context.Context, fail func(error)) error {
	var failed error
	for job := range s.in {
		if failed != nil {
			continue
		}
		if err := s.write(ctx, job); err != nil {
			failed = err
			fail(err)
		}
	}
	return failed
}

func (s *writeStage) write(ctx context.Context, job *writeJob) error {
	m := s.env.m
	if len(job.lines) > 0 {
		rejected, err := s.sink.Write(ctx, job.lines)
		if err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		for _, r := range rejected {
			m.SinkRejected.Inc()
			job.dls = append(job.dls, ingest.DeadLetter{
				Value: r.Line, Reason: ingest.ReasonSinkRejected, Err: r.Err.Error(),
				Topic: s.id.topic, Partition: s.id.part, Offset: -1,
			})
		}
	}
	select {
	case s.bufs <- job.lines[:0]:
	default:
	}
	if len(job.dls) > 0 {
		if s.dlq == nil {
			for _, d := range job.dls {
				s.env.log(s.id).Warn("bad input (no dead-letter topic configured)", "reason", d.Reason, "err", d.Err, "offset", d.Offset)
			}
		} else if err := s.durable(ctx, "write dead letters", func(ctx context.Context) error {
			return s.dlq.Write(ctx, job.dls)
		}); err != nil {
			return err
		}
		for _, d := range job.dls {
			m.DeadLetters.WithLabelValues(string(d.Reason)).Inc()
		}
	}
	if job.final && s.env.onFinal != nil {
		defer s.env.onFinal(s.id)
	}
	if job.ckpt == nil {
		return nil
	}
	if err := s.durable(ctx, "write checkpoint", func(ctx context.Context) error {
		return s.store.Save(ctx, s.id.topic, s.id.part, job.ckpt)
	}); err != nil {
		return err
	}
	select {
	case s.ckpts <- job.ckpt:
	default:
	}
	now := s.env.clock.Now()
	m.Checkpoints.Inc()
	m.CheckpointTime.WithLabelValues(s.id.labels()...).Set(float64(now.Unix()))
	s.env.health.checkpointed(s.id, job.next)
	if s.commit == nil {
		return nil
	}
	if err := s.commit.Commit(s.id.topic, s.id.part, job.next); err != nil {
		// The checkpoint holds the offset, so nothing is lost; the
		// commit is retried at the next checkpoint tick.
		s.env.health.setUncommitted(s.id, true)
		m.CommitErrors.Inc()
		s.env.log(s.id).Warn("offset commit failed; retrying at the next checkpoint", "offset", job.next, "err", err)
		return nil
	}
	s.env.health.setUncommitted(s.id, false)
	s.marks.committed.Store(job.next)
	if hwm := s.marks.hwm.Load(); hwm > 0 {
		m.Lag.WithLabelValues(s.id.labels()...).Set(float64(hwm - job.next))
	}
	m.Commits.Inc()
	s.env.timing.committed(now)
	return nil
}

// durable runs op until it succeeds, with exponential backoff and jitter
// between attempts, reporting the partition as retrying meanwhile; with
// pipeline.on_failure = "exit" the first failure is returned instead.
func (s *writeStage) durable(ctx context.Context, what string, op func(context.Context) error) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = 0
	log := s.env.log(s.id)
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info(what+" succeeded again; the partition resumes", "attempts", attempt)
				s.env.health.set(s.id, stateRunning, "")
			}
			return nil
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.env.m.StageFailures.WithLabelValues(what).Inc()
		if s.env.cfg.Pipeline.OnFailure == "exit" {
			return fmt.Errorf("%s: %w (pipeline.on_failure = \"exit\": stopping)", what, err)
		}
		wait := bo.NextBackOff()
		s.env.health.set(s.id, stateRetrying, what+": "+err.Error())
		log.Error(what+" failed; the partition makes no progress until it succeeds (retrying)",
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-s.env.clock.After(wait):
		}
	}
}
