package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
)

// ReaderHooks let the owner of a PartitionReader count what it does.
type ReaderHooks struct {
	// FetchError is called for each failed fetch (it is retried).
	FetchError func(err error)
	// Reset is called when the reader moves from offset from to offset to
	// because from is not in the log: before its start (deleted by
	// retention: those records are lost) or past its end (the topic was
	// recreated or the broker replaced: the offset belongs to a log that
	// is gone).
	Reset func(from, to int64, pastEnd bool)
}

// PartitionReader reads one topic-partition from an offset and never gives
// up: when the connection fails (a broker restart, a server error, a
// dropped connection), it reconnects at the next offset after an
// exponential backoff with jitter, for as long as its context lasts.
//
// An offset outside the log is never skipped silently: one before the log's
// start moves to the earliest offset; one past its end (the log was
// recreated) moves to the offset PastEnd designates (kafka.start). Both are
// logged at error level and reported to ReaderHooks.Reset. The check runs
// when the reader opens and whenever it has waited StallCheck for a record.
type PartitionReader struct {
	c     *Cluster
	topic string
	part  int
	next  int64
	r     *kafka.Reader
	log   *slog.Logger
	hooks ReaderHooks
	bo    backoff.BackOff
	// PastEnd resolves where to continue when the next offset is past the
	// log's end (the policy of kafka.start); nil continues at the end.
	PastEnd func(ctx context.Context) (int64, error)
	// StallCheck is how long the reader waits for a record before it
	// checks that its offset is still inside the log (0: 30s): between
	// StallCheck and twice that after the last record. The fetches share
	// one deadline, StallCheck from when it was set; when it passes with
	// records read since, it is set anew without a check. Neither a context
	// nor a clock reading per record: at a million records a second, each
	// cost more than the rest of the fetch.
	StallCheck time.Duration
	checked    bool
	// The fetches' shared deadline, derived from parent; read says a
	// record came since it was set.
	fctx    context.Context
	fcancel context.CancelFunc
	parent  context.Context
	read    bool
	// failed says the backoff has grown since the last record.
	failed bool
	// lastErr is when a fetch last failed (Unix ns; 0: never).
	lastErr atomic.Int64
}

// LastError is when a fetch last failed (zero: never): a partition whose
// reader fails is not idle, only unreachable.
func (s *PartitionReader) LastError() time.Time {
	if t := s.lastErr.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Time{}
}

// Reader returns a reader of topic-partition from offset.
func (c *Cluster) Reader(topic string, partition int, offset int64, log *slog.Logger, hooks ReaderHooks) *PartitionReader {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 5 * time.Second
	bo.MaxElapsedTime = 0 // never give up
	return &PartitionReader{c: c, topic: topic, part: partition, next: offset, log: log, hooks: hooks, bo: bo}
}

// Next is the offset of the next record the reader returns.
func (s *PartitionReader) Next() int64 { return s.next }

// Fetch implements Source.
func (s *PartitionReader) Fetch(ctx context.Context) (Message, error) {
	for {
		if !s.checked {
			if err := s.checkRange(ctx); err != nil {
				if err := s.backoff(ctx, err); err != nil {
					return Message{}, err
				}
				continue
			}
			s.checked = true
		}
		if s.r == nil {
			s.r = s.open()
		}
		stall := s.StallCheck
		if stall <= 0 {
			stall = 30 * time.Second
		}
		m, err := s.r.FetchMessage(s.fetchContext(ctx, stall))
		if err == nil {
			s.next = m.Offset + 1
			s.read = true
			if s.failed {
				s.bo.Reset()
				s.failed = false
			}
			return Message{
				Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, HighWaterMark: m.HighWaterMark,
				Time: m.Time, Key: m.Key, Value: m.Value,
			}, nil
		}
		read := s.read
		s.dropFetchContext()
		if ctx.Err() != nil {
			return Message{}, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			if read {
				continue // records came within the deadline: not a stall
			}
			// Nothing for a while: a quiet partition, or an offset that
			// points past a log that was recreated. Check which.
			s.checked = false
			continue
		}
		s.Close()
		s.checked = !errors.Is(err, kafka.OffsetOutOfRange)
		if err := s.backoff(ctx, err); err != nil {
			return Message{}, err
		}
	}
}

// fetchContext returns the fetches' shared context: ctx with a deadline
// stall from when it was made, made anew when ctx is another context or
// after a fetch failed.
func (s *PartitionReader) fetchContext(ctx context.Context, stall time.Duration) context.Context {
	if s.fctx == nil || s.parent != ctx {
		s.dropFetchContext()
		s.fctx, s.fcancel = context.WithTimeout(ctx, stall)
		s.parent, s.read = ctx, false
	}
	return s.fctx
}

func (s *PartitionReader) dropFetchContext() {
	if s.fcancel != nil {
		s.fcancel()
	}
	s.fctx, s.fcancel, s.parent = nil, nil, nil
}

// checkRange moves the next offset into the log if it lies outside it.
func (s *PartitionReader) checkRange(ctx context.Context) error {
	first, err := s.c.First(ctx, s.topic, s.part)
	if err != nil {
		return err
	}
	end, err := s.c.End(ctx, s.topic, s.part)
	if err != nil {
		return err
	}
	switch {
	case s.next < first:
		s.log.Error("offset no longer in Kafka (retention?): skipping to the earliest offset; those records are lost",
			"offset", s.next, "earliest", first, "lost", first-s.next)
		s.reset(first, false)
	case s.next > end:
		to := end
		if s.PastEnd != nil {
			if to, err = s.PastEnd(ctx); err != nil {
				return err
			}
		}
		s.log.Error("offset past the end of the partition's log (topic recreated or broker replaced?): "+
			"continuing where kafka.start says", "offset", s.next, "log_start", first, "log_end", end, "continue_at", to)
		s.reset(to, true)
	}
	return nil
}

func (s *PartitionReader) reset(to int64, pastEnd bool) {
	if s.hooks.Reset != nil {
		s.hooks.Reset(s.next, to, pastEnd)
	}
	s.next = to
	s.Close()
}

func (s *PartitionReader) open() *kafka.Reader {
	cfg := s.c.cfg
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:               cfg.Brokers,
		Topic:                 s.topic,
		Partition:             s.part,
		Dialer:                s.c.dialer,
		MinBytes:              1,
		MaxBytes:              cfg.MaxFetchBytes,
		MaxWait:               cfg.FetchMaxWait.Duration,
		QueueCapacity:         1024,
		ReadBackoffMin:        50 * time.Millisecond,
		ReadBackoffMax:        time.Second,
		MaxAttempts:           1 << 30, // a broker outage is waited out, never given up on
		OffsetOutOfRangeError: true,    // handled here, not skipped silently
	})
	// SetOffset only records the offset on a reader that has not started.
	_ = r.SetOffset(s.next)
	return r
}

// backoff reports a fetch failure and waits before the next attempt.
func (s *PartitionReader) backoff(ctx context.Context, cause error) error {
	wait := s.bo.NextBackOff()
	s.failed = true
	s.lastErr.Store(time.Now().UnixNano())
	if s.hooks.FetchError != nil {
		s.hooks.FetchError(cause)
	}
	s.log.Warn("fetch failed; reconnecting", "offset", s.next, "in", wait.Round(time.Millisecond), "err", cause)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Close closes the connection; Fetch reopens it.
func (s *PartitionReader) Close() {
	s.dropFetchContext()
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}

// String names the partition.
func (s *PartitionReader) String() string { return fmt.Sprintf("%s/%d", s.topic, s.part) }
