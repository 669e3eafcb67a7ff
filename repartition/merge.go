package repartition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/tsrep/tsrep/ingest"
)

// source is one input partition of a generation and what the merge holds
// of it. Only the merge goroutine touches it, but for paused and resume
// (its fetcher's gate).
type source struct {
	i          int // place in the generation's (topic, partition) order
	topic      string
	part       int
	start, end int64
	next       int64 // offset after the last message received
	hwm        int64
	// wm is the running maximum of the point times received (raised by
	// one after its points at wm were written while it did not hold the
	// frontier back: see bump).
	wm int64
	// ents are the points received and not written, in effective time
	// order; marks the messages received and not wholly written.
	ents  []entry
	head  int
	marks []mark
	mhead int
	arena []byte
	base  int // arena bytes before ents[head]'s key, all written
	// skip, at offset skipAt, is how many points of the first message (in
	// effective time order) the previous owner wrote (commit metadata).
	skip     int
	skipAt   int64
	caughtUp bool
	lastMsg  time.Time
	idle     bool
	finished bool
	// dedup holds, per internal partition, the last point the internal
	// topic had from this source when the generation started.
	dedup    map[int]*pos
	lastSent commitPos
	free     chan []ingest.Message
	paused   atomic.Bool
	resume   chan struct{}
	msgCtr   interface{ Add(float64) }
}

// entry is one buffered point: its key and line-protocol line in the
// source's arena, its effective time, offset and index in the input, and
// its internal partition.
type entry struct {
	eff    int64
	off    int64
	idx    uint32
	q      int32
	k0, k1 int // key: arena[k0:k1]; line: arena[k1:l1]
	l1     int
}

// mark is one message received and not wholly written: its offset, the
// running maximum before it, its points (n, of which done are written)
// and its dead letters (written with its last point).
type mark struct {
	off      int64
	wmBefore int64
	n, done  int
	dls      []ingest.DeadLetter
}

func (src *source) active() bool { return !src.idle && !src.finished }

// live is the number of points buffered.
func (src *source) live() int { return len(src.ents) - src.head }

// setPaused pauses or resumes the source's fetcher.
func (src *source) setPaused(p bool) {
	if src.paused.Load() == p {
		return
	}
	src.paused.Store(p)
	if !p {
		select {
		case src.resume <- struct{}{}:
		default:
		}
	}
}

// merger orders the points of a generation's sources on event time and
// cuts them into steps for the writer. It is the decoder's handler.
type merger struct {
	s     *Stage
	srcs  []*source
	dec   ingest.Decoder
	enc   lineprotocol.Encoder
	parts int
	// the message being decoded
	cur    *source
	msg    *ingest.Message
	idx    uint32
	curDLs []ingest.DeadLetter
	// step building
	refs    []ref
	take    []int // points taken from each source by the cut
	builds  []recordBuild
	lastCut time.Time
	points  int // points buffered, all sources
}

// ref is an entry to write in a step.
type ref struct {
	src *source
	e   *entry
}

// recordBuild gathers one internal partition's records of a step.
type recordBuild struct {
	recs []ingest.Record
	val  []byte
	key  []byte
	last map[int]srcPos // source index -> last point in val
}

// merge runs the generation: a fetcher per source, the merge in this
// goroutine, and the writer; it returns once the writer has stored and
// committed what the last cut (when ctx ended) handed it.
func (s *Stage) merge(ctx, dctx context.Context, srcs []*source, w *writer) error {
	dec, _ := ingest.NewDecoder(s.cfg.Kafka.Format, ingest.DecoderOptions(s.cfg.Kafka)) // checked by New
	m := &merger{s: s, srcs: srcs, dec: dec, parts: s.parts, builds: make([]recordBuild, s.parts), lastCut: s.clk.Now()}
	m.enc.SetPrecision(lineprotocol.Nanosecond)
	now := s.clk.Now()
	for _, src := range srcs {
		src.resume = make(chan struct{}, 1)
		src.lastMsg = now
		src.msgCtr = s.m.Messages.WithLabelValues(src.topic)
		src.lastSent = commitPos{off: src.next, wm: src.wm, skip: src.skip}
	}

	fctx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	in := make(chan fetched, 2*len(srcs))
	var fwg sync.WaitGroup
	for _, src := range srcs {
		src.free = make(chan []ingest.Message, 3)
		for i := 0; i < cap(src.free); i++ {
			src.free <- make([]ingest.Message, 0, fetchSlice)
		}
		fwg.Add(1)
		go func() { defer fwg.Done(); s.fetch(fctx, src, in) }()
	}
	steps := make(chan *step, 2)
	werr := make(chan error, 1)
	go func() { werr <- w.run(dctx, steps) }()

	finish := func(runErr error) error {
		stopFetch()
		fwg.Wait()
		close(steps)
		return errors.Join(runErr, <-werr)
	}
	send := func(st *step) bool {
		select {
		case steps <- st:
			return true
		case err := <-werr:
			werr <- err // for finish
			return false
		}
	}
	tick := s.clk.NewTicker(stepLinger)
	defer tick.Stop()
	idle := s.cfg.Kafka.RepartitionIdle.Duration
	allDone := false
	for {
		select {
		case f := <-in:
			if f.err != nil {
				return finish(fmt.Errorf("read %s/%d: %w", f.src.topic, f.src.part, f.err))
			}
			if len(f.msgs) > 0 {
				m.receive(f.src, f.msgs)
				clear(f.msgs)
				f.src.free <- f.msgs[:0]
			}
			if f.done {
				f.src.finished = true
			}
		case now := <-tick.C():
			for _, src := range srcs {
				if src.active() && src.caughtUp && now.Sub(src.lastMsg) >= idle {
					src.idle = true
					s.log.Debug("input partition idle: the frontier no longer waits for it", "topic", src.topic, "partition", src.part)
				}
			}
		case <-ctx.Done():
			if st := m.cut(false); st != nil {
				send(st)
			}
			return finish(nil)
		case err := <-werr:
			werr <- err
			return finish(nil)
		}
		if st := m.maybeCut(); st != nil {
			if !send(st) {
				return finish(nil)
			}
		}
		if !allDone && m.allFinished() {
			// UntilEnd: every source is at its end and handed to the
			// writer; this step makes it commit. Stay until ctx ends.
			allDone = true
			if !send(&step{final: true, commits: m.commits()}) {
				return finish(nil)
			}
		}
	}
}

// allFinished reports whether every source has reached its end and every
// point is handed to the writer.
func (m *merger) allFinished() bool {
	for _, src := range m.srcs {
		if !src.finished || src.live() > 0 || src.mhead < len(src.marks) {
			return false
		}
	}
	return true
}

// receive decodes messages of src into its buffer. A point's effective
// time is the later of its own and the newest point time of the messages
// before it in its partition; a message's points are kept in effective
// time order (then in the message's order).
func (m *merger) receive(src *source, msgs []ingest.Message) {
	src.lastMsg = m.s.clk.Now()
	if src.idle {
		src.idle = false
		m.s.log.Debug("input partition active again", "topic", src.topic, "partition", src.part)
	}
	for i := range msgs {
		msg := &msgs[i]
		m.cur, m.msg, m.idx = src, msg, 0
		e0 := len(src.ents)
		m.dec.Decode(msg.Value, msg.Time.UnixNano(), m)
		wm := src.wm
		maxT := int64(math.MinInt64)
		es := src.ents[e0:]
		for j := range es {
			maxT = max(maxT, es[j].eff) // eff holds the point's time until here
			es[j].eff = max(es[j].eff, wm)
		}
		slices.SortStableFunc(es, func(a, b entry) int {
			switch {
			case a.eff < b.eff:
				return -1
			case a.eff > b.eff:
				return 1
			}
			return 0
		})
		mk := mark{off: msg.Offset, wmBefore: wm, n: len(es), dls: m.curDLs}
		if src.skip > 0 && msg.Offset == src.skipAt {
			// The previous owner wrote the first skip points of this
			// message (it committed here with that count): drop them.
			k := min(src.skip, len(es))
			mk.done = k
			src.ents = slices.Delete(src.ents, e0, e0+k)
			m.s.m.Deduplicated.Add(float64(k))
		}
		src.skip = 0
		m.curDLs = nil
		src.wm = max(wm, maxT)
		src.marks = append(src.marks, mk)
		m.points += len(src.ents) - e0
		src.next = msg.Offset + 1
		if msg.HighWaterMark > 0 {
			src.hwm = msg.HighWaterMark
		}
		src.caughtUp = src.next >= src.hwm
	}
	src.msgCtr.Add(float64(len(msgs)))
	m.cur, m.msg = nil, nil
}

// Point implements ingest.Handler: it buffers the point as a line of line
// protocol with its timestamp, keyed by measurement + tag set.
func (m *merger) Point(p *ingest.Point) {
	src := m.cur
	k0 := len(src.arena)
	src.arena = ingest.AppendSeriesPrefix(src.arena, p)
	k1 := len(src.arena)
	e := &m.enc
	e.Reset()
	e.ClearErr()
	e.StartLineRaw(p.Measurement)
	for _, t := range p.Tags {
		e.AddTagRaw(t.Key, t.Value)
	}
	for _, f := range p.Fields {
		if v, ok := lineprotocol.FloatValue(f.Value); ok {
			e.AddFieldRaw(f.Key, v)
		}
	}
	e.EndLine(time.Unix(0, p.Time))
	if err := e.Err(); err != nil {
		src.arena = src.arena[:k0]
		m.bad(p.Measurement, ingest.ReasonInvalidName, fmt.Errorf("point cannot be written as line protocol: %w", err))
		return
	}
	src.arena = append(src.arena, bytes.TrimSuffix(e.Bytes(), []byte{'\n'})...)
	src.ents = append(src.ents, entry{eff: p.Time, off: m.msg.Offset, idx: m.idx, q: int32(partitionOf(src.arena[k0:k1], m.parts)),
		k0: k0, k1: k1, l1: len(src.arena)})
	m.idx++
}

// Bad implements ingest.Handler: bad input is counted and dead-lettered
// here, with the input's topic, partition and offset.
func (m *merger) Bad(raw []byte, reason ingest.Reason, err error) { m.bad(raw, reason, err) }

func (m *merger) bad(raw []byte, reason ingest.Reason, err error) {
	if c := m.s.o.BadInput; c != nil {
		c.WithLabelValues(string(reason)).Inc()
	}
	if !reason.DeadLetters() {
		return
	}
	truncated := 0
	if len(raw) > ingest.MaxDeadLetterValue {
		raw, truncated = raw[:ingest.MaxDeadLetterValue], len(raw)
	}
	msg := m.msg
	m.curDLs = append(m.curDLs, ingest.DeadLetter{
		Value: bytes.Clone(raw), Truncated: truncated, Reason: reason, Err: err.Error(),
		Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, Time: msg.Time,
	})
}

// frontier is the smallest running maximum of the active sources: every
// point of an earlier effective time has been read. all says no source
// is active (every point can be written).
func (m *merger) frontier() (w int64, all bool) {
	w, all = math.MaxInt64, true
	for _, src := range m.srcs {
		if src.active() {
			w, all = min(w, src.wm), false
		}
	}
	return w, all
}

// emittable is the number of src's points before w (or all).
func emittable(src *source, w int64, all bool) int {
	if all {
		return src.live()
	}
	return sort.Search(src.live(), func(i int) bool { return src.ents[src.head+i].eff >= w })
}

// maybeCut cuts a step when enough points can be written, or stepLinger
// after the last one when any can; it also paces the fetchers and forces
// a cut when the partition holding the frontier holds too much.
func (m *merger) maybeCut() *step {
	w, all := m.frontier()
	n := 0
	for _, src := range m.srcs {
		n += emittable(src, w, all)
	}
	var st *step
	if n >= stepPoints || m.s.clk.Now().Sub(m.lastCut) >= stepLinger || all {
		st = m.cut(false)
		w, all = m.frontier()
	}
	// Pace the fetchers: a source ahead of the frontier holding its
	// credit waits; the one holding the frontier back is always read.
	for _, src := range m.srcs {
		held := src.live() >= creditPoints || len(src.arena)-src.base >= creditBytes
		blocking := src.active() && src.wm == w && !all
		src.setPaused(held && !blocking)
		if blocking && len(src.arena)-src.base >= hardBytes && st == nil {
			m.s.log.Warn("an input partition holds so many points at one event time that they are written before the other partitions reach it (a forced cut)",
				"topic", src.topic, "partition", src.part, "event_time", time.Unix(0, w).UTC(), "bytes", len(src.arena)-src.base)
			m.s.m.ForcedCuts.Inc()
			st = m.cut(true)
		}
	}
	return st
}

// cut takes every point before the frontier (and at it, if inclusive)
// out of the sources, in write order, into a step, with the messages it
// completes. It returns nil if there is nothing to write or commit.
func (m *merger) cut(inclusive bool) *step {
	w, all := m.frontier()
	if inclusive && w < math.MaxInt64 {
		w++
	}
	m.lastCut = m.s.clk.Now()
	st := &step{}
	m.refs, m.take = m.refs[:0], m.take[:0]
	for _, src := range m.srcs {
		ne := emittable(src, w, all)
		m.take = append(m.take, ne)
		for i := 0; i < ne; i++ {
			m.refs = append(m.refs, ref{src, &src.ents[src.head+i]})
		}
		// The messages these points complete, in order; a message
		// without points is complete once the frontier passes it.
		left := ne
		for k := src.mhead; k < len(src.marks); k++ {
			mk := &src.marks[k]
			r := mk.n - mk.done
			if r > left || (mk.n == 0 && !all && mk.wmBefore >= w) {
				mk.done += min(r, left)
				break
			}
			left -= r
			mk.done = mk.n
			st.dls = append(st.dls, mk.dls...)
			mk.dls = nil
			src.mhead++
		}
		// bump: a source that no longer holds the frontier back (idle),
		// whose newest points are written now, moves its running maximum
		// one past them, so that points it gets later (older data) never
		// come before them in the write order. The step commits at once,
		// before any such point is written, so a restart computes the
		// same effective times.
		if ne > 0 && !src.finished && src.wm < w && src.ents[src.head+ne-1].eff == src.wm && src.wm < math.MaxInt64 {
			src.wm++
			st.commitNow = true
		}
		if inclusive && src.active() && src.wm == w-1 {
			src.wm = w // the forced cut: as above, for the partitions at the frontier
			st.commitNow = true
		}
	}
	commits := m.commits()
	if len(m.refs) == 0 && len(st.dls) == 0 && commits == nil {
		return nil
	}
	st.commits = commits
	slices.SortFunc(m.refs, func(a, b ref) int {
		if a.e.eff != b.e.eff {
			if a.e.eff < b.e.eff {
				return -1
			}
			return 1
		}
		if c := bytes.Compare(a.src.arena[a.e.k0:a.e.k1], b.src.arena[b.e.k0:b.e.k1]); c != 0 {
			return c
		}
		if a.src.i != b.src.i {
			return a.src.i - b.src.i
		}
		if a.e.off != b.e.off {
			if a.e.off < b.e.off {
				return -1
			}
			return 1
		}
		return int(a.e.idx) - int(b.e.idx)
	})
	st.recs = make([][]ingest.Record, m.parts)
	now := m.s.clk.Now()
	for _, r := range m.refs {
		src, e := r.src, r.e
		q := int(e.q)
		key := src.arena[e.k0:e.k1]
		if f := src.dedup[q]; f != nil {
			p := pos{eff: e.eff, key: key, off: e.off, idx: e.idx}
			if comparePos(&p, f) <= 0 {
				st.dedup++
				continue
			}
			delete(src.dedup, q)
		}
		b := &m.builds[q]
		line := src.arena[e.k1:e.l1]
		if len(b.val) > 0 && len(b.val)+1+len(line) > recordBytes {
			b.flush(now)
		}
		if len(b.val) == 0 {
			b.key = append(b.key[:0], key...)
		} else {
			b.val = append(b.val, '\n')
		}
		b.val = append(b.val, line...)
		if b.last == nil {
			b.last = map[int]srcPos{}
		}
		b.last[src.i] = srcPos{topic: src.topic, part: src.part, pos: pos{eff: e.eff, key: key, off: e.off, idx: e.idx}}
		st.points++
	}
	for q := range m.builds {
		m.builds[q].flush(now)
		st.recs[q], m.builds[q].recs = m.builds[q].recs, nil
	}
	m.points -= len(m.refs)
	for i, src := range m.srcs {
		src.head += m.take[i]
	}
	m.release()
	m.s.m.Buffered.Set(float64(m.points))
	newest := int64(math.MinInt64)
	for _, src := range m.srcs {
		newest = max(newest, src.wm)
	}
	if !all && w > math.MinInt64 && newest > w {
		m.s.m.FrontierLag.Set(float64(newest-w) / 1e9)
	} else {
		m.s.m.FrontierLag.Set(0)
	}
	return st
}

// commits returns the commit position of every source if one moved since
// the last step sent, else nil. A source's position is its first message
// not wholly written, with how many of its points are, and the running
// maximum before it; or, when every message is written, the next offset
// and the running maximum.
func (m *merger) commits() []commitPos {
	out := make([]commitPos, len(m.srcs))
	moved := false
	for i, src := range m.srcs {
		c := commitPos{topic: src.topic, part: src.part, off: src.next, wm: src.wm, hwm: src.hwm}
		switch {
		case src.mhead < len(src.marks):
			mk := &src.marks[src.mhead]
			c.off, c.wm, c.skip = mk.off, mk.wmBefore, mk.done
		case src.skip > 0 && src.next == src.skipAt:
			c.skip = src.skip // the message the previous owner partly wrote is still to come
		}
		for q := range src.dedup {
			c.pending = append(c.pending, q)
		}
		moved = moved || c.off != src.lastSent.off || c.wm != src.lastSent.wm || c.skip != src.lastSent.skip || len(c.pending) != len(src.lastSent.pending)
		src.lastSent = c
		out[i] = c
	}
	if !moved {
		return nil
	}
	return out
}

// release drops what the sources no longer need: written entries and
// marks, and the arena bytes before the first entry still held.
func (m *merger) release() {
	for _, src := range m.srcs {
		if src.mhead == len(src.marks) {
			src.marks, src.mhead = src.marks[:0], 0
		} else if src.mhead > len(src.marks)/2 {
			n := copy(src.marks, src.marks[src.mhead:])
			clear(src.marks[n:])
			src.marks, src.mhead = src.marks[:n], 0
		}
		if src.head == len(src.ents) {
			src.ents, src.head, src.arena, src.base = src.ents[:0], 0, src.arena[:0], 0
			continue
		}
		// The arena holds the entries' bytes in arrival order, and
		// entries are in effective time order within a message only:
		// the bytes before the smallest offset still referenced are free.
		lo := len(src.arena)
		for i := src.head; i < len(src.ents) && src.ents[i].off == src.ents[src.head].off; i++ {
			lo = min(lo, src.ents[i].k0)
		}
		src.base = lo
		if src.head > len(src.ents)/2 || lo > len(src.arena)/2 {
			n := copy(src.arena, src.arena[lo:])
			src.arena = src.arena[:n]
			k := copy(src.ents, src.ents[src.head:])
			src.ents = src.ents[:k]
			for i := range src.ents {
				src.ents[i].k0 -= lo
				src.ents[i].k1 -= lo
				src.ents[i].l1 -= lo
			}
			src.head, src.base = 0, 0
		}
	}
}

// flush closes the record being built, with its sources header.
func (b *recordBuild) flush(now time.Time) {
	if len(b.val) == 0 {
		return
	}
	ss := make([]srcPos, 0, len(b.last))
	for _, sp := range b.last {
		ss = append(ss, sp)
	}
	slices.SortFunc(ss, func(a, b srcPos) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		return a.part - b.part
	})
	b.recs = append(b.recs, ingest.Record{
		Key: bytes.Clone(b.key), Value: bytes.Clone(b.val), Time: now,
		Headers: []ingest.Header{{Key: HeaderSource, Value: appendSources(nil, ss)}},
	})
	b.val = b.val[:0]
	clear(b.last)
}
