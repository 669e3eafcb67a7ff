package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/ingest"
)

// kafkaSource reads one partition from an offset and never gives up: when
// the reader fails (a broker restart, a server error, a dropped
// connection), it is closed and reopened at the next offset after a
// backoff, for as long as ctx lasts. An offset that no longer exists
// (deleted by retention) moves the reader to the earliest one, which is
// logged and counted: those records are gone from Kafka.
type kafkaSource struct {
	p     *Pipeline
	topic string
	part  int
	next  int64
	r     *kafka.Reader
	log   *slog.Logger
	wait  time.Duration
}

func (p *Pipeline) newKafkaSource(topic string, part int, offset int64, log *slog.Logger) *kafkaSource {
	return &kafkaSource{p: p, topic: topic, part: part, next: offset, log: log}
}

// FetchMessage implements Source.
func (s *kafkaSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for {
		if s.r == nil {
			r, err := ingest.NewPartitionReader(s.p.cfg.Kafka.Brokers, s.p.o.Dialer, s.topic, s.part, s.next,
				s.p.cfg.Kafka.MaxFetchBytes, s.p.cfg.Kafka.FetchMaxWait.Duration)
			if err != nil {
				if err := s.backoff(ctx, err); err != nil {
					return kafka.Message{}, err
				}
				continue
			}
			s.r = r
		}
		m, err := s.r.FetchMessage(ctx)
		if err == nil {
			s.next = m.Offset + 1
			s.wait = 0
			return m, nil
		}
		if ctx.Err() != nil {
			return kafka.Message{}, ctx.Err()
		}
		s.r.Close()
		s.r = nil
		if errors.Is(err, kafka.OffsetOutOfRange) {
			first, lerr := ingest.ResolveOffset(ctx, s.p.client, s.topic, s.part, ingest.StartEarliest, time.Time{})
			if lerr == nil && first > s.next {
				s.log.Error("offset no longer in Kafka (retention?): skipping to the earliest offset; those records are lost",
					"offset", s.next, "earliest", first, "lost", first-s.next)
				s.p.m.OffsetResets.Inc()
				s.next = first
				continue
			}
		}
		if err := s.backoff(ctx, err); err != nil {
			return kafka.Message{}, err
		}
	}
}

// backoff logs a fetch failure and waits before the next attempt.
func (s *kafkaSource) backoff(ctx context.Context, cause error) error {
	s.wait = min(max(2*s.wait, 100*time.Millisecond), 5*time.Second)
	s.p.m.FetchErrors.Inc()
	s.log.Warn("fetch failed; reconnecting", "offset", s.next, "in", s.wait, "err", cause)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.wait):
		return nil
	}
}

// Close closes the reader.
func (s *kafkaSource) Close() {
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}
