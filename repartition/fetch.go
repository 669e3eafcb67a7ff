package repartition

import (
	"context"
	"errors"

	"github.com/tsrep/tsrep/ingest"
)

// fetched is what a fetcher hands to the merge.
type fetched struct {
	src  *source
	msgs []ingest.Message
	err  error
	done bool // the source reached its end (UntilEnd)
}

// fetch reads src from its start into in until ctx ends, pausing while
// the merge says so.
func (s *Stage) fetch(ctx context.Context, src *source, in chan<- fetched) {
	send := func(f fetched) bool {
		select {
		case in <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if src.end >= 0 && src.start >= src.end {
		send(fetched{src: src, done: true})
		return
	}
	r := s.o.Cluster.Reader(src.topic, src.part, src.start, s.log.With("topic", src.topic, "partition", src.part), ingest.ReaderHooks{})
	r.PastEnd = func(ctx context.Context) (int64, error) { return s.firstOffset(ctx, src.topic, src.part) }
	defer r.Close()
	next := src.start
	for {
		for src.paused.Load() {
			select {
			case <-src.resume:
			case <-ctx.Done():
				return
			}
		}
		var buf []ingest.Message
		select {
		case buf = <-src.free:
		case <-ctx.Done():
			return
		}
		buf, err := fillSlice(ctx, r, buf[:0], src.end)
		if len(buf) > 0 {
			next = buf[len(buf)-1].Offset + 1
			if !send(fetched{src: src, msgs: buf}) {
				return
			}
		} else {
			src.free <- buf
		}
		if err != nil {
			if ctx.Err() == nil {
				send(fetched{src: src, err: err})
			}
			return
		}
		if src.end >= 0 && next >= src.end {
			send(fetched{src: src, done: true})
			return
		}
	}
}

// fillSlice appends messages from r to buf until it is full, fetchLinger
// has passed since the first, or (end >= 0) the offset reaches end.
func fillSlice(ctx context.Context, r ingest.Source, buf []ingest.Message, end int64) ([]ingest.Message, error) {
	m, err := r.Fetch(ctx)
	if err != nil {
		return buf, err
	}
	buf = append(buf, m)
	lctx, stop := context.WithTimeout(ctx, fetchLinger)
	defer stop()
	for len(buf) < cap(buf) && (end < 0 || m.Offset+1 < end) {
		m, err = r.Fetch(lctx)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return buf, nil
			}
			return buf, err
		}
		buf = append(buf, m)
	}
	return buf, nil
}
