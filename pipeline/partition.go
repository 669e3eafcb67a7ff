package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/sinks"
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
}

// partition is the state of one topic-partition: everything a checkpoint
// holds, and the two stages that advance it.
type partition struct {
	p      *Pipeline
	topic  string
	part   int
	labels []string
	log    *slog.Logger

	// windowing stage
	dec       ingest.Decoder
	win       *windowing.Windower
	key       []byte
	names     [][]byte
	vals      []float64
	msg       *kafka.Message
	dls       []ingest.DeadLetter
	next      int64 // offset after the last message folded into win
	ckptNext  int64 // next of the last checkpoint marker sent
	items     chan *item
	abort     chan struct{} // closed when the learning stage gives up
	lastStats windowing.Stats
	lateEnc   lineprotocol.Encoder
	points    int
	messages  int
	lag       prometheus.Gauge

	// learning stage
	learner models.Learner
	preq    *models.Prequential
	enc     *sinks.Encoder
	jobs    chan *writeJob // to the writing stage, in order
	bufs    chan []byte    // line buffers the writing stage is done with
	abortMu sync.Once

	// commit, if set, commits the offset after a checkpoint (group mode).
	commit func(next int64) error
	// uncommitted is set while the last checkpoint's commit failed, so the
	// next checkpoint tick retries it even if no message arrived.
	uncommitted atomic.Bool
	// persist writes checkpoint files; replays run without them.
	persist bool
}

// Source yields one partition's messages in offset order; a bounded source
// returns io.EOF after its last message. *kafka.Reader is one.
type Source interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
}

func (p *Pipeline) newPartition(topic string, part int) (*partition, error) {
	cfg := p.cfg
	prec, _ := config.PrecisionDuration(cfg.Kafka.Precision)
	dec, err := ingest.NewDecoder(cfg.Kafka.Format, ingest.Options{
		Precision:       int64(prec),
		MaxFuture:       int64(cfg.Kafka.MaxFuture.Duration),
		MaxMessageBytes: cfg.Kafka.MaxFetchBytes,
	})
	if err != nil {
		return nil, err
	}
	learner, err := p.o.NewLearner()
	if err != nil {
		return nil, err
	}
	pt := &partition{
		p: p, topic: topic, part: part,
		labels:  []string{topic, strconv.Itoa(part)},
		log:     p.log.With("topic", topic, "partition", part),
		dec:     dec,
		learner: learner,
		preq:    models.NewPrequential(cfg.Window.MaxSeries),
		enc:     sinks.NewEncoder(cfg.Influx.MeasurementPrefix, cfg.Window.MaxSeries, p.o.ExtraTags...),
		items:   make(chan *item, cfg.Pipeline.MaxInflightBatches),
		abort:   make(chan struct{}),
		jobs:    make(chan *writeJob, 2),
		bufs:    make(chan []byte, 4),
		lag:     p.m.Lag.WithLabelValues(topic, strconv.Itoa(part)),
	}
	pt.win = windowing.New(windowing.Config{
		Interval:     cfg.Window.Interval.Duration,
		Length:       cfg.Window.Length,
		Stride:       cfg.Window.Stride,
		Lateness:     cfg.Window.Lateness.Duration,
		MinObserved:  cfg.Window.MinObserved,
		BatchSize:    cfg.Window.BatchSize,
		MaxSeries:    cfg.Window.MaxSeries,
		DropNew:      cfg.Window.SeriesPolicy == "drop_new",
		Multichannel: cfg.Window.Multichannel,
	}, memory.DefaultAllocator, pt.emit)
	return pt, nil
}

// runPartition restores the partition's state, then runs its two stages
// until ctx ends (or, with UntilEnd, the partition is caught up, which it
// reports), draining with dctx.
func (p *Pipeline) runPartition(ctx, dctx context.Context, g *ingest.Generation, a ingest.Assignment) (bool, error) {
	pt, err := p.newPartition(a.Topic, a.Partition)
	if err != nil {
		return false, err
	}
	defer pt.win.Close()
	pt.persist = true
	pt.commit = func(next int64) error { return g.Commit(a.Topic, a.Partition, next) }
	start, err := pt.restore(ctx, a)
	if err != nil {
		return false, err
	}
	end := int64(-1)
	if p.o.UntilEnd {
		if end, err = p.endOffset(ctx, a.Topic, a.Partition); err != nil {
			return false, err
		}
	}
	pt.log.Info("partition assigned", "start_offset", start, "committed", a.Committed, "end_offset", end)
	p.o.Timing.assigned(p.o.Now())
	if end >= 0 && start >= end {
		return true, nil // nothing to read
	}
	src := p.newKafkaSource(a.Topic, a.Partition, start, pt.log)
	defer src.Close()
	err = pt.run(ctx, dctx, src, start, end)
	return end >= 0 && pt.next >= end, err
}

// run runs the two stages over src from offset start until ctx ends, src
// is exhausted, or (end >= 0) the offset reaches end.
func (pt *partition) run(ctx, dctx context.Context, src Source, start, end int64) error {
	pt.next, pt.ckptNext = start, start
	learnDone := make(chan error, 1)
	go func() { learnDone <- pt.learnStage(dctx) }()
	fetchErr := pt.windowStage(ctx, src, end)
	return errors.Join(fetchErr, <-learnDone)
}

// restore loads the partition's checkpoint, if any, and returns the offset
// to start reading at.
func (pt *partition) restore(ctx context.Context, a ingest.Assignment) (int64, error) {
	body, ok, err := pt.p.ckpt.Load(a.Topic, a.Partition)
	if err != nil {
		return 0, err
	}
	if ok {
		next, err := pt.loadCheckpoint(body)
		if err != nil {
			return 0, fmt.Errorf("%s: %w (move it away to start this partition from its committed offset with empty state)", pt.p.ckpt.Path(a.Topic, a.Partition), err)
		}
		if a.Committed >= 0 && a.Committed != next {
			pt.log.Info("resuming from the checkpoint, not the committed offset", "checkpoint_offset", next, "committed", a.Committed)
		}
		return next, nil
	}
	if w := pt.p.o.WarmupFrom; !w.IsZero() {
		// No state yet: learn from history first. The same run then
		// continues on the live stream, so what it writes has neither a
		// gap nor an overlap.
		off, err := ingest.ResolveOffset(ctx, pt.p.client, a.Topic, a.Partition, ingest.StartTime, w)
		if err != nil {
			return 0, err
		}
		end, err := ingest.ResolveOffset(ctx, pt.p.client, a.Topic, a.Partition, ingest.StartLatest, w)
		if err != nil {
			return 0, err
		}
		pt.log.Info("warming up from history", "from", w, "start_offset", off, "live_end_offset", end, "messages", max(0, end-off))
		return off, nil
	}
	if a.Committed >= 0 {
		pt.log.Warn("no checkpoint for a partition with a committed offset: starting there with empty state "+
			"(is pipeline.checkpoint_dir shared by the group's instances?)", "committed", a.Committed)
		return a.Committed, nil
	}
	kind, t := startKind(pt.p.cfg.Kafka.Start)
	return ingest.ResolveOffset(ctx, pt.p.client, a.Topic, a.Partition, kind, t)
}

// windowStage fetches, decodes and windows messages, handing batches and
// checkpoint markers to the learning stage, until ctx ends, the partition
// reaches end (if end >= 0), or the learning stage aborts. It ends with a
// final checkpoint marker and closes the items channel. The error is a
// fetch failure the reader did not recover from.
func (pt *partition) windowStage(ctx context.Context, src Source, end int64) error {
	defer close(pt.items)
	cfg := pt.p.cfg
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The fetcher hands over slices of messages, so the channel and select
	// cost is paid per slice, not per message. A slice goes out when full,
	// or fetchLinger after its first message when the stream is slow.
	batches := make(chan []kafka.Message, 2)
	free := make(chan []kafka.Message, 4)
	for i := 0; i < cap(free); i++ {
		free <- make([]kafka.Message, 0, fetchSlice)
	}
	fetchDone := make(chan struct{})
	var fetchErr error // written by the fetcher, read after fetchDone
	go func() {
		defer close(fetchDone)
		defer close(batches)
		for {
			var buf []kafka.Message
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
	defer func() { cancel(); <-fetchDone }()

	flush := time.NewTicker(cfg.Window.FlushInterval.Duration)
	defer flush.Stop()
	ckpt := time.NewTicker(cfg.Pipeline.CheckpointInterval.Duration)
	defer ckpt.Stop()
	for {
		select {
		case batch, ok := <-batches:
			if !ok { // the source ended or failed: keep what was read, then report
				pt.checkpoint()
				cancel()
				<-fetchDone
				return fetchErr
			}
			for i := range batch {
				pt.handle(&batch[i])
				if end >= 0 && pt.next >= end {
					pt.checkpoint()
					return nil
				}
			}
			clear(batch) // drop the references to the message buffers
			free <- batch[:0]
		case <-flush.C:
			pt.win.Flush()
			pt.exportStats()
		case <-ckpt.C:
			if pt.next != pt.ckptNext || pt.uncommitted.Load() {
				pt.checkpoint()
			}
		case <-ctx.Done():
			pt.checkpoint()
			return nil
		case <-pt.abort:
			return nil
		}
	}
}

// fetchSlice is the number of messages handed from the fetcher to the
// windowing stage at once; fetchLinger how long a partial slice waits.
const (
	fetchSlice  = 256
	fetchLinger = 5 * time.Millisecond
)

// fillSlice appends messages from src to buf until it is full, or until
// fetchLinger has passed since the first one; the error is the source's.
func fillSlice(ctx context.Context, src Source, buf []kafka.Message) ([]kafka.Message, error) {
	m, err := src.FetchMessage(ctx) // the first message: wait as long as it takes
	if err != nil {
		return buf, err
	}
	buf = append(buf, m)
	lctx, stop := context.WithTimeout(ctx, fetchLinger)
	defer stop()
	for len(buf) < cap(buf) {
		m, err := src.FetchMessage(lctx)
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
func (pt *partition) handle(m *kafka.Message) {
	pt.msg = m
	pt.messages++
	if pc := pt.p.o.Progress; pc != nil {
		pc.Messages.Add(1)
	}
	pt.dec.Decode(m.Value, m.Time.UnixNano(), pt)
	pt.next = m.Offset + 1
	if m.HighWaterMark > 0 {
		pt.lag.Set(float64(m.HighWaterMark - pt.next))
	}
	if len(pt.dls) >= 1000 { // do not hold dead letters without bound
		pt.send(&item{dls: pt.takeDLs()})
	}
}

// Point implements ingest.Handler.
func (pt *partition) Point(p *ingest.Point) {
	pt.points += len(p.Fields)
	if pc := pt.p.o.Progress; pc != nil {
		pc.Points.Add(int64(len(p.Fields)))
	}
	if pt.p.cfg.Window.Multichannel {
		pt.key = ingest.AppendSeriesPrefix(pt.key[:0], p)
		pt.names, pt.vals = pt.names[:0], pt.vals[:0]
		for _, f := range p.Fields {
			pt.names = append(pt.names, f.Key)
			pt.vals = append(pt.vals, f.Value)
		}
		if pt.win.AddPoint(pt.key, p.Time, pt.names, pt.vals) == windowing.Late && pt.p.cfg.Window.LatePolicy == "dead_letter" {
			pt.deadLetter(pt.latePoint(p, -1), ingest.ReasonLate, "point is older than window.lateness behind its series' newest point")
		}
		return
	}
	for f := range p.Fields {
		pt.key = ingest.AppendSeriesKey(pt.key[:0], p, f)
		if pt.win.Add(pt.key, p.Time, p.Fields[f].Value) == windowing.Late && pt.p.cfg.Window.LatePolicy == "dead_letter" {
			pt.deadLetter(pt.latePoint(p, f), ingest.ReasonLate, "point is older than window.lateness behind its series' newest point")
		}
	}
}

// latePoint writes field f of p (all fields if f < 0) as line protocol
// for a dead letter.
func (pt *partition) latePoint(p *ingest.Point, f int) []byte {
	e := &pt.lateEnc
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
func (pt *partition) Bad(raw []byte, reason ingest.Reason, err error) {
	pt.p.m.bad(reason)
	if !reason.DeadLetters() {
		return
	}
	pt.deadLetter(raw, reason, err.Error())
}

func (pt *partition) deadLetter(raw []byte, reason ingest.Reason, msg string) {
	m := pt.msg
	truncated := 0
	if len(raw) > ingest.MaxDeadLetterValue {
		raw, truncated = raw[:ingest.MaxDeadLetterValue], len(raw)
	}
	pt.dls = append(pt.dls, ingest.DeadLetter{
		Value: bytes.Clone(raw), Truncated: truncated, Reason: reason, Err: msg,
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Time: m.Time,
	})
}

func (pt *partition) takeDLs() []ingest.DeadLetter {
	d := pt.dls
	pt.dls = nil
	return d
}

// emit receives a full batch from the windower.
func (pt *partition) emit(rec arrow.RecordBatch) {
	pt.send(&item{rec: rec, dls: pt.takeDLs()})
}

// checkpoint flushes the open batch and sends a checkpoint marker (or,
// without persistence, just the pending dead letters).
func (pt *partition) checkpoint() {
	pt.win.Flush()
	it := &item{dls: pt.takeDLs(), next: pt.next}
	if pt.persist {
		var w binenc.Writer
		pt.win.AppendState(&w)
		it.snapshot = w.B
	}
	if it.snapshot != nil || len(it.dls) > 0 {
		pt.send(it)
	}
	pt.ckptNext = pt.next
	pt.exportStats()
}

// send hands an item to the learning stage, waiting while
// max_inflight_batches are in flight (backpressure), unless that stage
// has given up.
func (pt *partition) send(it *item) {
	pt.p.m.Inflight.Inc()
	select {
	case pt.items <- it:
	case <-pt.abort:
		pt.p.m.Inflight.Dec()
		if it.rec != nil {
			it.rec.Release()
		}
	}
}

func (pt *partition) exportStats() {
	m, st, last := pt.p.m, pt.win.Stats(), pt.lastStats
	m.Windows.Add(float64(st.Windows - last.Windows))
	m.SparseWindows.Add(float64(st.SparseWindow - last.SparseWindow))
	m.LatePoints.Add(float64(st.Late - last.Late))
	m.Duplicates.Add(float64(st.Duplicates - last.Duplicates))
	m.SeriesEvicted.Add(float64(st.Evicted - last.Evicted))
	m.SeriesRejected.Add(float64(st.Rejected - last.Rejected))
	m.Series.WithLabelValues(pt.labels...).Set(float64(pt.win.Series()))
	m.Messages.WithLabelValues(pt.topic).Add(float64(pt.messages))
	m.Points.WithLabelValues(pt.topic).Add(float64(pt.points))
	for _, r := range []struct {
		n      uint64
		reason ingest.Reason
	}{{st.Late - last.Late, ingest.ReasonLate}, {st.Rejected - last.Rejected, ingest.ReasonSeriesCap}} {
		if r.n > 0 {
			m.BadInput.WithLabelValues(string(r.reason)).Add(float64(r.n))
		}
	}
	pt.messages, pt.points = 0, 0
	pt.lastStats = st
}

// writeJob is what the learning stage hands to the writing stage: encoded
// results, dead letters and, at a checkpoint, the partition's complete
// state, in stream order.
type writeJob struct {
	lines []byte
	dls   []ingest.DeadLetter
	ckpt  []byte // a checkpoint body covering the messages before next
	next  int64
}

// errAborted is returned when the other stages gave up first.
var errAborted = errors.New("partition stopped")

// fail stops the partition's stages after an error (once).
func (pt *partition) fail(err error) {
	pt.abortMu.Do(func() {
		close(pt.abort)
		pt.log.Error("stopping the partition without committing further", "err", err)
	})
}

// learnStage learns from each batch and encodes the results, handing them
// with the dead letters and checkpoints to the writing stage, which it runs.
// It returns when the items channel is closed and the writes are done, or
// with an error when a write could not complete before ctx ended (the
// uncommitted part is then redone by whoever owns the partition next).
func (pt *partition) learnStage(ctx context.Context) error {
	writeDone := make(chan error, 1)
	go func() { writeDone <- pt.writeStage(ctx) }()
	var failed error
	for it := range pt.items {
		pt.p.m.Inflight.Dec()
		if failed != nil {
			if it.rec != nil {
				it.rec.Release()
			}
			continue
		}
		if err := pt.learnItem(it); err != nil {
			failed = err
			if !errors.Is(err, errAborted) {
				pt.fail(err)
			}
		}
	}
	close(pt.jobs)
	werr := <-writeDone
	if errors.Is(failed, errAborted) {
		failed = nil // the writing stage's error says why
	}
	return errors.Join(failed, werr)
}

// learnItem learns from an item's batch, and hands a write job over when
// the results fill a request of influx.batch_points lines, at a checkpoint
// (the results before it must be written before it), when there are dead
// letters, or when the stage has caught up (an idle stream's results do not
// wait).
func (pt *partition) learnItem(it *item) error {
	if it.rec != nil {
		err := pt.learnBatch(it)
		it.rec.Release()
		if err != nil {
			return err
		}
	}
	if pt.enc.Lines() < pt.p.cfg.Influx.BatchPoints && it.snapshot == nil && len(it.dls) == 0 && len(pt.items) > 0 {
		return nil
	}
	var next []byte
	select {
	case next = <-pt.bufs:
	default:
	}
	job := &writeJob{lines: pt.enc.Take(next), dls: it.dls, next: it.next}
	if it.snapshot != nil {
		// The state now is the state after every message before it.next:
		// the learner has seen every window the windowing stage emitted
		// before taking the snapshot.
		var w binenc.Writer
		pt.appendCheckpoint(&w, it.snapshot, it.next)
		job.ckpt = w.B
	}
	select {
	case pt.jobs <- job:
		return nil
	case <-pt.abort:
		return errAborted
	}
}

// writeStage writes each job's results, then its dead letters (with the
// results InfluxDB rejected as bad data), then its checkpoint, then commits
// the offset the checkpoint covers: in order, so an offset is committed only
// after everything before it is stored.
func (pt *partition) writeStage(ctx context.Context) error {
	var failed error
	for job := range pt.jobs {
		if failed != nil {
			continue
		}
		if err := pt.writeJob(ctx, job); err != nil {
			failed = err
			pt.fail(err)
		}
	}
	return failed
}

func (pt *partition) writeJob(ctx context.Context, job *writeJob) error {
	m := pt.p.m
	if len(job.lines) > 0 {
		rejected, err := pt.p.o.Sink.Write(ctx, job.lines)
		if err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		for _, r := range rejected {
			m.SinkRejected.Inc()
			job.dls = append(job.dls, ingest.DeadLetter{
				Value: r.Line, Reason: ingest.ReasonSinkRejected, Err: r.Err.Error(),
				Topic: pt.topic, Partition: pt.part, Offset: -1,
			})
		}
	}
	select {
	case pt.bufs <- job.lines[:0]:
	default:
	}
	if len(job.dls) > 0 {
		if pt.p.o.DeadLetters == nil {
			for _, d := range job.dls {
				pt.log.Warn("bad input (no dead-letter topic configured)", "reason", d.Reason, "err", d.Err, "offset", d.Offset)
			}
		} else if err := pt.p.o.DeadLetters.Write(ctx, job.dls); err != nil {
			return fmt.Errorf("write dead letters: %w", err)
		}
		for _, d := range job.dls {
			m.DeadLetters.WithLabelValues(string(d.Reason)).Inc()
		}
	}
	if job.ckpt == nil {
		return nil
	}
	if err := pt.p.ckpt.Save(pt.topic, pt.part, job.ckpt); err != nil {
		return err
	}
	m.Checkpoints.Inc()
	m.checkpointed(pt.labels[0], pt.labels[1], pt.p.o.Now())
	if pt.commit == nil {
		return nil
	}
	if err := pt.commit(job.next); err != nil {
		// The checkpoint holds the offset, so nothing is lost; the
		// commit is retried at the next checkpoint.
		pt.uncommitted.Store(true)
		m.CommitErrors.Inc()
		pt.log.Warn("offset commit failed; retrying at the next checkpoint", "offset", job.next, "err", err)
	} else {
		pt.uncommitted.Store(false)
		m.Commits.Inc()
		pt.p.o.Timing.committed(pt.p.o.Now())
	}
	return nil
}

// learnBatch learns from a batch and encodes its results (written later by
// the writing stage).
func (pt *partition) learnBatch(it *item) error {
	m := pt.p.m
	t0 := time.Now()
	out, err := pt.learner.Step(it.rec)
	if err != nil {
		return fmt.Errorf("learner %s: %w", pt.learner.Name(), err)
	}
	b, err := models.View(it.rec)
	if err != nil {
		return err
	}
	resolved := pt.preq.Observe(&b, out)
	m.LearnSeconds.Observe(time.Since(t0).Seconds())
	m.Batches.Inc()
	for _, st := range out.Train {
		for obj, v := range map[string]float64{"forecast": st.LossForecast, "impute": st.LossImpute, "contrast": st.LossContrast} {
			if v == v { // not NaN
				m.Loss.WithLabelValues(obj).Set(v)
			}
		}
	}

	nerr := len(pt.enc.Errors())
	pt.enc.Encode(&sinks.Result{
		Topic: pt.topic, Partition: pt.part, Model: pt.learner.Name(),
		Batch: &b, Out: out, Resolved: resolved,
	})
	for _, e := range pt.enc.Errors()[nerr:] {
		it.dls = append(it.dls, ingest.DeadLetter{
			Value: []byte(e.Series), Reason: ingest.ReasonSinkRejected, Err: "encode result: " + e.Err.Error(),
			Topic: pt.topic, Partition: pt.part, Offset: -1,
		})
	}
	return nil
}

const partitionStateVersion = 1

// appendCheckpoint writes the partition's whole state: the offset it
// covers, the windows (snapshotted by the windowing stage), the learner and
// the outstanding forecasts.
func (pt *partition) appendCheckpoint(w *binenc.Writer, windows []byte, next int64) {
	w.U32(partitionStateVersion)
	w.String(pt.topic)
	w.U32(uint32(pt.part))
	w.I64(next)
	w.Bytes(windows)
	w.String(pt.learner.Name())
	pt.learner.AppendState(w)
	pt.preq.AppendState(w)
}

// loadCheckpoint restores what appendCheckpoint wrote and returns its offset.
func (pt *partition) loadCheckpoint(body []byte) (int64, error) {
	r := binenc.NewReader(body)
	if v := r.U32(); r.Err() == nil && v != partitionStateVersion {
		return 0, fmt.Errorf("partition state version %d, this build reads %d", v, partitionStateVersion)
	}
	topic, part, next := r.String(256), int(r.U32()), r.I64()
	if r.Err() == nil && (topic != pt.topic || part != pt.part) {
		return 0, fmt.Errorf("checkpoint is of %s/%d, not %s/%d", topic, part, pt.topic, pt.part)
	}
	windows := r.Bytes(0)
	if r.Err() != nil {
		return 0, r.Err()
	}
	if err := pt.win.LoadState(binenc.NewReader(windows)); err != nil {
		return 0, fmt.Errorf("window state: %w", err)
	}
	if name := r.String(256); r.Err() == nil && name != pt.learner.Name() {
		return 0, fmt.Errorf("checkpoint holds model %q, config has %q (model.name)", name, pt.learner.Name())
	}
	if err := pt.learner.LoadState(r); err != nil {
		return 0, fmt.Errorf("learner state: %w", err)
	}
	if err := pt.preq.LoadState(r); err != nil {
		return 0, fmt.Errorf("forecast state: %w", err)
	}
	if err := r.Done(); err != nil {
		return 0, err
	}
	if next < 0 {
		return 0, errors.New("checkpoint offset is negative")
	}
	pt.lastStats = pt.win.Stats()
	return next, nil
}
