package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/windowing"
)

// item is what the windowing stage hands to the learning stage: a batch of
// windows, dead letters, or a checkpoint marker, in stream order.
type item struct {
	rec arrow.RecordBatch
	dls []ingest.DeadLetter
	// snapshot, when set, is the windowing state right after the
	// messages before offset next: the learning stage completes the
	// checkpoint with its own state once everything before it is written.
	snapshot []byte
	next     int64
	// idle, when set, says the partition has read to the end of its log
	// and nothing arrived for model.sync_idle: the learning stage may close
	// its epoch (see models.Shared).
	idle bool
	// final says the partition has reached the end it was to read: the
	// writing stage reports it once everything before it is written.
	final bool
	// poll asks the learner for what it can output between batches
	// (embeddings that waited for the group's encoder version).
	poll bool
}

// windowStage fetches, decodes and windows one partition's messages, and
// hands batches, dead letters and checkpoint markers to the learning stage
// in stream order. It owns the decoder, the windower and the offsets read.
type windowStage struct {
	env   *stageEnv
	id    partitionID
	dec   ingest.Decoder
	win   *windowing.Windower
	out   chan<- *item
	abort <-chan struct{}
	// persist takes a windowing snapshot at each checkpoint; replays run
	// without state.
	persist bool

	key   []byte
	names [][]byte
	vals  []float64
	msg   *ingest.Message
	dls   []ingest.DeadLetter
	// next is the offset after the last message folded into win; ckptNext
	// the next of the last checkpoint marker sent.
	next, ckptNext int64
	// reading says a message was read since the last checkpoint marker.
	reading bool
	// marks are the partition's high watermark and committed offset.
	marks *marks
	// lastMsg is when the last message was read; caughtUp says it was the
	// newest the partition had then.
	lastMsg  time.Time
	caughtUp bool
	// idleMarkers sends an idle marker when the partition goes quiet (the
	// learner shares its encoder; idleSent: one went out since the last
	// message); hold keeps the stage, idle, after its end (see run).
	idleMarkers bool
	idleSent    bool
	hold        bool
	// snapSize is the size of the last snapshot, to size the next one.
	snapSize int
	// src is the source being read (for its health).
	src       ingest.Source
	lastStats windowing.Stats
	lateEnc   lineprotocol.Encoder
	points    int
	messages  int
	lag       prometheus.Gauge
}

func newWindowStage(env *stageEnv, id partitionID, mk *marks, out chan<- *item, abort <-chan struct{}) (*windowStage, error) {
	cfg := env.cfg
	dec, err := ingest.NewDecoder(cfg.Kafka.Format, ingest.DecoderOptions(cfg.Kafka))
	if err != nil {
		return nil, err
	}
	s := &windowStage{
		env: env, id: id, dec: dec, out: out, abort: abort, marks: mk,
		lag: env.m.Lag.WithLabelValues(id.labels()...),
	}
	s.win = windowing.New(windowing.Config{
		Interval:     cfg.Window.Interval.Duration,
		Length:       cfg.Window.Length,
		Stride:       cfg.Window.Stride,
		Lateness:     cfg.Window.Lateness.Duration,
		MinObserved:  cfg.Window.MinObserved,
		BatchSize:    cfg.Window.BatchSize,
		MaxSeries:    cfg.Window.MaxSeries,
		DropNew:      cfg.Window.SeriesPolicy == "drop_new",
		Multichannel: cfg.Window.Multichannel,
	}, memory.DefaultAllocator, s.emit)
	return s, nil
}

// close releases the windower's builders.
func (s *windowStage) close() { s.win.Close() }

// fetchSlice is the number of messages handed from the fetcher to the
// windowing stage at once; fetchLinger how long a partial slice waits.
const (
	fetchSlice  = 256
	fetchLinger = 5 * time.Millisecond
)

// run fetches from src from offset start until ctx ends, src is exhausted,
// the offset reaches end (if end >= 0), or the learning stage aborts. It
// ends with a final checkpoint marker and closes the channel to the
// learning stage. The error is a fetch failure the source did not recover
// from.
//
// With hold set, reaching end does not end the stage: it stops reading and
// stays, idle, until ctx ends, so that a learner sharing its encoder with
// other partitions keeps closing its epochs for them (the idle rule) until
// the whole group is done.
func (s *windowStage) run(ctx context.Context, src ingest.Source, start, end int64) error {
	defer close(s.out)
	s.src = src
	s.next, s.ckptNext = start, start
	s.lastMsg = s.env.clock.Now()
	cfg := s.env.cfg
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The fetcher hands over slices of messages, so the channel and select
	// cost is paid per slice, not per message. A slice goes out when full,
	// or fetchLinger after its first message when the stream is slow.
	batches := make(chan []ingest.Message, 2)
	free := make(chan []ingest.Message, 4)
	for i := 0; i < cap(free); i++ {
		free <- make([]ingest.Message, 0, fetchSlice)
	}
	fetchDone := make(chan struct{})
	var fetchErr error // written by the fetcher, read after fetchDone
	stopFetch := func() { cancel(); <-fetchDone }
	if end >= 0 && start >= end {
		close(fetchDone) // nothing to read
		close(batches)
	} else {
		go func() {
			defer close(fetchDone)
			defer close(batches)
			for {
				var buf []ingest.Message
				select {
				case buf = <-free:
				case <-fctx.Done():
					return
				}
				buf, err := fillSlice(fctx, src, buf[:0])
				if len(buf) > 0 {
					select {
					case batches <- buf:
					case <-fctx.Done():
						return
					}
				}
				if err != nil {
					if fctx.Err() == nil && !errors.Is(err, io.EOF) {
						fetchErr = fmt.Errorf("fetch: %w", err)
					}
					return
				}
			}
		}()
	}
	defer stopFetch()

	clk := s.env.clock
	flush := clk.NewTicker(cfg.Window.FlushInterval.Duration)
	defer flush.Stop()
	ckpt := clk.NewTicker(cfg.Pipeline.CheckpointInterval.Duration)
	defer ckpt.Stop()
	atEnd := false
	reachEnd := func() {
		atEnd, s.caughtUp = true, true
		if s.hold {
			// The end of this partition's input: its learner catches up
			// (waiting for the group's versions of the epochs its deferred
			// windows are in) and goes idle, so that the group does not
			// wait for it.
			s.maybeIdle(true)
		}
		// The checkpoint after the idle marker: the end offset is
		// committed only once every window before it is written, those
		// that waited for the group's encoder included. An UntilEnd run
		// takes the group's committed ends to mean that: had the end been
		// committed with windows still waiting, a rebalance in between
		// (a member leaving) could end the run with them never written.
		s.checkpoint()
		s.final()
		stopFetch()
		batches = nil
	}
	for {
		if atEnd && !s.hold {
			return nil
		}
		select {
		case batch, ok := <-batches:
			if !ok { // the source ended or failed: keep what was read, then report
				if fetchErr != nil || !s.hold {
					s.checkpoint()
					stopFetch()
					return fetchErr
				}
				reachEnd()
				continue
			}
			now := clk.Now()
			for i := range batch {
				s.handle(&batch[i], now)
				if end >= 0 && s.next >= end {
					reachEnd()
					break
				}
			}
			if !atEnd {
				clear(batch) // drop the references to the message buffers
				free <- batch[:0]
			}
		case <-flush.C():
			s.win.Flush()
			s.exportStats()
			s.maybeIdle(atEnd)
			if s.idleMarkers {
				s.send(&item{poll: true})
			}
		case <-ckpt.C():
			if s.next != s.ckptNext || s.env.health.uncommitted(s.id) {
				s.checkpoint()
			}
		case <-ctx.Done():
			if !atEnd {
				s.checkpoint()
			}
			return nil
		case <-s.abort:
			return nil
		}
	}
}

// final sends the marker that tells the writing stage the partition has
// reached its end (after the checkpoint that covers it).
func (s *windowStage) final() {
	s.send(&item{final: true, next: s.next})
}

// fillSlice appends messages from src to buf until it is full, or until
// fetchLinger has passed since the first one; the error is the source's.
func fillSlice(ctx context.Context, src ingest.Source, buf []ingest.Message) ([]ingest.Message, error) {
	m, err := src.Fetch(ctx) // the first message: wait as long as it takes
	if err != nil {
		return buf, err
	}
	buf = append(buf, m)
	lctx, stop := context.WithTimeout(ctx, fetchLinger)
	defer stop()
	for len(buf) < cap(buf) {
		m, err := src.Fetch(lctx)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return buf, nil // the linger is over: hand over what there is
			}
			return buf, err
		}
		buf = append(buf, m)
	}
	return buf, nil
}

// handle folds one message into the windows.
func (s *windowStage) handle(m *ingest.Message, now time.Time) {
	s.msg = m
	s.messages++
	if pc := s.env.progress; pc != nil {
		pc.Messages.Add(1)
	}
	if !s.reading && s.persist {
		s.reading = true
		s.env.health.reading(s.id, now)
	}
	s.lastMsg, s.idleSent = now, false
	s.dec.Decode(m.Value, m.Time.UnixNano(), s)
	s.next = m.Offset + 1
	if m.HighWaterMark > 0 {
		s.marks.hwm.Store(m.HighWaterMark)
		s.lag.Set(float64(m.HighWaterMark - s.marks.committed.Load()))
		s.caughtUp = s.next >= m.HighWaterMark
	}
	if len(s.dls) >= 1000 { // do not hold dead letters without bound
		s.send(&item{dls: s.takeDLs()})
	}
}

// maybeIdle tells the learning stage, at a flush tick, that the partition
// is idle (once, until a message comes): it has reached the end it was to
// read; or it has read everything its log had, nothing new came for
// model.sync_idle, and its reader is not failing. (An empty partition is
// idle by the same rule: whether it is empty for good, nothing can tell
// sooner, and a partition that declares itself idle and then gets data
// resumes at the group's frontier, which would make its embeddings depend
// on when its data came.)
func (s *windowStage) maybeIdle(atEnd bool) {
	if !s.idleMarkers || s.idleSent {
		return
	}
	if !atEnd {
		idle, now := s.env.cfg.Model.SyncIdle.Duration, s.env.clock.Now()
		if idle <= 0 || !s.caughtUp || now.Sub(s.lastMsg) < idle {
			return
		}
		// A source that fails to fetch (a broker restart) is not quiet,
		// only unreachable: the group waits for it.
		if e, ok := s.src.(interface{ LastError() time.Time }); ok && now.Sub(e.LastError()) < idle {
			return
		}
	}
	s.idleSent = true
	s.win.Flush()
	s.send(&item{idle: true, dls: s.takeDLs()})
}

// Point implements ingest.Handler.
func (s *windowStage) Point(p *ingest.Point) {
	s.points += len(p.Fields)
	if pc := s.env.progress; pc != nil {
		pc.Points.Add(int64(len(p.Fields)))
	}
	cfg := s.env.cfg
	if cfg.Window.Multichannel {
		s.key = ingest.AppendSeriesPrefix(s.key[:0], p)
		s.names, s.vals = s.names[:0], s.vals[:0]
		for _, f := range p.Fields {
			s.names = append(s.names, f.Key)
			s.vals = append(s.vals, f.Value)
		}
		s.outcome(p, -1, s.win.AddPoint(s.key, p.Time, s.names, s.vals))
		return
	}
	for f := range p.Fields {
		s.key = ingest.AppendSeriesKey(s.key[:0], p, f)
		s.outcome(p, f, s.win.Add(s.key, p.Time, p.Fields[f].Value))
	}
}

// outcome dead-letters field f of p (all fields if f < 0) for what the
// windower did with it: a late point with window.late_policy =
// "dead_letter", a point too near the ends of InfluxDB's time range for its
// windows and forecast to be written (counted as bad_timestamp either way).
func (s *windowStage) outcome(p *ingest.Point, f int, o windowing.Outcome) {
	switch {
	case o == windowing.Late && s.env.cfg.Window.LatePolicy == "dead_letter":
		s.deadLetter(s.latePoint(p, f), ingest.ReasonLate, "point is older than window.lateness behind its series' newest point")
	case o == windowing.OutOfRange:
		s.deadLetter(s.latePoint(p, f), ingest.ReasonBadTimestamp,
			"timestamp within a few intervals of the end of InfluxDB's time range: its windows and forecast could not be written")
	}
}

// latePoint writes field f of p (all fields if f < 0) as line protocol
// for a dead letter.
func (s *windowStage) latePoint(p *ingest.Point, f int) []byte {
	e := &s.lateEnc
	e.Reset()
	e.StartLineRaw(p.Measurement)
	for _, t := range p.Tags {
		e.AddTagRaw(t.Key, t.Value)
	}
	for i, fl := range p.Fields {
		if f >= 0 && i != f {
			continue
		}
		if v, ok := lineprotocol.FloatValue(fl.Value); ok {
			e.AddFieldRaw(fl.Key, v)
		}
	}
	e.EndLine(time.Unix(0, p.Time))
	return bytes.TrimSpace(e.Bytes())
}

// Bad implements ingest.Handler.
func (s *windowStage) Bad(raw []byte, reason ingest.Reason, err error) {
	s.env.m.bad(reason)
	if !reason.DeadLetters() {
		return
	}
	s.deadLetter(raw, reason, err.Error())
}

func (s *windowStage) deadLetter(raw []byte, reason ingest.Reason, msg string) {
	m := s.msg
	truncated := 0
	if len(raw) > ingest.MaxDeadLetterValue {
		raw, truncated = raw[:ingest.MaxDeadLetterValue], len(raw)
	}
	s.dls = append(s.dls, ingest.DeadLetter{
		Value: bytes.Clone(raw), Truncated: truncated, Reason: reason, Err: msg,
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Time: m.Time,
	})
}

func (s *windowStage) takeDLs() []ingest.DeadLetter {
	d := s.dls
	s.dls = nil
	return d
}

// emit receives a full batch from the windower.
func (s *windowStage) emit(rec arrow.RecordBatch) {
	s.send(&item{rec: rec, dls: s.takeDLs()})
}

// checkpoint flushes the open batch and sends a checkpoint marker (or,
// without persistence, just the pending dead letters).
func (s *windowStage) checkpoint() {
	s.win.Flush()
	it := &item{dls: s.takeDLs(), next: s.next}
	if s.persist {
		// Sized by the last snapshot: growing a buffer of hundreds of MB
		// by doubling copies it several times over.
		w := binenc.Writer{B: make([]byte, 0, s.snapSize+s.snapSize/8)}
		s.win.AppendState(&w)
		it.snapshot = w.B
		s.snapSize = len(w.B)
		s.env.health.marked(s.id)
		s.reading = false
	}
	if it.snapshot != nil || len(it.dls) > 0 {
		s.send(it)
	}
	s.ckptNext = s.next
	s.exportStats()
}

// send hands an item to the learning stage, waiting while
// max_inflight_batches are in flight (backpressure), unless the partition
// has given up.
func (s *windowStage) send(it *item) {
	s.env.m.Inflight.Inc()
	select {
	case s.out <- it:
	case <-s.abort:
		s.env.m.Inflight.Dec()
		if it.rec != nil {
			it.rec.Release()
		}
	}
}

func (s *windowStage) exportStats() {
	m, st, last := s.env.m, s.win.Stats(), s.lastStats
	m.Windows.Add(float64(st.Windows - last.Windows))
	m.SparseWindows.Add(float64(st.SparseWindow - last.SparseWindow))
	m.LatePoints.Add(float64(st.Late - last.Late))
	m.Duplicates.Add(float64(st.Duplicates - last.Duplicates))
	m.SeriesEvicted.Add(float64(st.Evicted - last.Evicted))
	m.SeriesRejected.Add(float64(st.Rejected - last.Rejected))
	m.LatenessCapped.Add(float64(st.LatenessCapped - last.LatenessCapped))
	m.Series.WithLabelValues(s.id.labels()...).Set(float64(s.win.Series()))
	m.Messages.WithLabelValues(s.id.topic).Add(float64(s.messages))
	m.Points.WithLabelValues(s.id.topic).Add(float64(s.points))
	for _, r := range []struct {
		n      uint64
		reason ingest.Reason
	}{
		{st.Late - last.Late, ingest.ReasonLate},
		{st.Rejected - last.Rejected, ingest.ReasonSeriesCap},
		{st.OutOfRange - last.OutOfRange, ingest.ReasonBadTimestamp},
	} {
		if r.n > 0 {
			m.BadInput.WithLabelValues(string(r.reason)).Add(float64(r.n))
		}
	}
	s.messages, s.points = 0, 0
	s.lastStats = st
}
