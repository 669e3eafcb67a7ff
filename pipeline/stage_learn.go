package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/binenc"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/sinks"
)

// writeJob is what the learning stage hands to the writing stage: encoded
// results, dead letters and, at a checkpoint, the partition's complete
// state, in stream order.
type writeJob struct {
	lines []byte
	dls   []ingest.DeadLetter
	ckpt  []byte // a checkpoint body covering the messages before next
	next  int64
	// final: the partition has reached its end, and everything before is
	// in this job or earlier ones.
	final bool
}

// learnStage learns from each batch of windows (predict, then learn),
// scores the forecasts that came due, and encodes the results as line
// protocol, handing them with the dead letters and checkpoints to the
// writing stage in order. It owns the learner, the forecast scorer and the
// encoder.
type learnStage struct {
	env     *stageEnv
	id      partitionID
	learner models.Learner
	preq    *models.Prequential
	anom    *models.Anomaly // nil: anomaly scoring off
	// ckptSize is the size of the last checkpoint, to size the next one.
	ckptSize int
	enc      *sinks.Encoder
	in       <-chan *item
	out      chan<- *writeJob
	// bufs returns line buffers the writing stage is done with; ckpts,
	// the checkpoint buffer (a partition's state is large, and a fresh
	// buffer each time costs page faults).
	bufs   <-chan []byte
	ckpts  <-chan []byte
	abort  <-chan struct{}
	failed error
	// waitCtx ends the learner's waits for the group (a shared encoder's
	// next version): the partition's own context, not the drain's, so a
	// rebalance or a stop does not wait on partitions being moved.
	waitCtx context.Context
}

func newLearnStage(env *stageEnv, id partitionID, learner models.Learner, in <-chan *item, out chan<- *writeJob, bufs, ckpts <-chan []byte, abort <-chan struct{}) *learnStage {
	cfg := env.cfg
	s := &learnStage{
		env: env, id: id, learner: learner, in: in, out: out, bufs: bufs, ckpts: ckpts, abort: abort, waitCtx: context.Background(),
		preq: models.NewPrequential(cfg.Window.MaxSeries),
		enc:  sinks.NewEncoder(cfg.Influx.MeasurementPrefix, cfg.Window.MaxSeries, env.extraTags...),
	}
	if cfg.Anomaly.Enabled {
		s.anom, _ = models.NewAnomaly(AnomalyConfig(cfg)) // validated by config
	}
	return s
}

// errAborted is returned when another stage gave up first.
var errAborted = errors.New("partition stopped")

// run consumes items until the channel from the windowing stage is
// closed, then closes the channel to the writing stage. A learner error
// stops the partition (fail is called); items after it are released
// unread.
func (s *learnStage) run(ctx context.Context, fail func(error)) error {
	defer close(s.out)
	for it := range s.in {
		s.env.m.Inflight.Dec()
		if s.failed != nil {
			if it.rec != nil {
				it.rec.Release()
			}
			continue
		}
		if err := s.learnItem(ctx, it); err != nil {
			s.failed = err
			if !errors.Is(err, errAborted) {
				fail(err)
			}
		}
	}
	if errors.Is(s.failed, errAborted) {
		return nil // the stage that aborted says why
	}
	return s.failed
}

// learnItem learns from an item's batch, and hands a write job over when
// the results fill a request of influx.batch_points lines, at a checkpoint
// (the results before it must be written before it), when there are dead
// letters, or when the stage has caught up (an idle stream's results do not
// wait).
func (s *learnStage) learnItem(ctx context.Context, it *item) error {
	if it.rec != nil {
		err := s.learnBatch(ctx, it)
		it.rec.Release()
		if err != nil {
			return err
		}
	}
	if it.idle {
		if sh, ok := s.learner.(models.Shared); ok {
			out, err := sh.Idle(s.waitCtx)
			if err != nil {
				return s.learnErr(s.waitCtx, err)
			}
			s.encodeLate(out)
		}
	}
	if it.poll {
		if pl, ok := s.learner.(models.Polling); ok {
			out, err := pl.Poll(s.waitCtx)
			if err != nil {
				return s.learnErr(s.waitCtx, err)
			}
			s.encodeLate(out)
			s.env.m.Deferred.WithLabelValues(s.id.labels()...).Set(float64(pl.Deferred()))
		}
	}
	if it.final {
		if pl, ok := s.learner.(models.Polling); ok && pl.Deferred() > 0 {
			s.env.log(s.id).Info("windows waiting for the group's encoder version are kept in the checkpoint, and written once the version comes", "windows", pl.Deferred())
		}
	}
	if s.enc.Lines() < s.env.cfg.Influx.BatchPoints && it.snapshot == nil && len(it.dls) == 0 && !it.final && len(s.in) > 0 {
		return nil
	}
	var next []byte
	select {
	case next = <-s.bufs:
	default:
	}
	job := &writeJob{lines: s.enc.Take(next), dls: it.dls, next: it.next, final: it.final}
	if it.snapshot != nil {
		// The state now is the state after every message before it.next:
		// the learner has seen every window the windowing stage emitted
		// before taking the snapshot.
		var w binenc.Writer
		select {
		case w.B = <-s.ckpts:
		default:
		}
		if want := s.ckptSize + s.ckptSize/8; cap(w.B) < want { // sized by the last one
			w.B = make([]byte, 0, want)
		}
		w.B = w.B[:0]
		s.appendCheckpoint(&w, it.snapshot, it.next)
		job.ckpt = w.B
		s.ckptSize = len(w.B)
	}
	select {
	case s.out <- job:
		return nil
	case <-s.abort:
		return errAborted
	}
}

// learnErr maps an error of a learner that waited on the group (shared
// encoder) and was interrupted to errAborted.
func (s *learnStage) learnErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return errAborted
	}
	return fmt.Errorf("learner %s: %w", s.learner.Name(), err)
}

// learnBatch learns from a batch and encodes its results (written later by
// the writing stage).
func (s *learnStage) learnBatch(ctx context.Context, it *item) error {
	m := s.env.m
	t0 := time.Now()
	out, err := models.StepContext(s.waitCtx, s.learner, it.rec)
	if err != nil {
		return s.learnErr(s.waitCtx, err)
	}
	b, err := models.View(it.rec)
	if err != nil {
		return err
	}
	resolved := s.preq.Observe(&b, out)
	var scores []models.AnomalyScore
	if s.anom != nil {
		scores = s.anom.Observe(&b, out, resolved)
	}
	m.LearnSeconds.Observe(time.Since(t0).Seconds())
	m.Batches.Inc()
	s.observeTrain(out)

	nerr := len(s.enc.Errors())
	s.enc.Encode(&sinks.Result{
		Topic: s.id.topic, Partition: s.id.part, Model: s.learner.Name(),
		Batch: &b, Out: out, Resolved: resolved, Anomalies: scores, AnomalyDetails: s.env.cfg.Anomaly.Details,
	})
	for _, e := range s.enc.Errors()[nerr:] {
		it.dls = append(it.dls, ingest.DeadLetter{
			Value: []byte(e.Series), Reason: ingest.ReasonSinkRejected, Err: "encode result: " + e.Err.Error(),
			Topic: s.id.topic, Partition: s.id.part, Offset: -1,
		})
	}
	return nil
}

// observeTrain exports the losses of the training steps in out.
func (s *learnStage) observeTrain(out *models.Output) {
	for _, st := range out.Train {
		for obj, v := range map[string]float64{"forecast": st.LossForecast, "impute": st.LossImpute, "contrast": st.LossContrast} {
			if v == v { // not NaN
				s.env.m.Loss.WithLabelValues(obj).Set(v)
			}
		}
	}
}

// encodeLate encodes what a learner produced between batches (embeddings
// of windows that waited for their encoder version, and the training
// steps made on them).
func (s *learnStage) encodeLate(out *models.Output) {
	if out == nil || (len(out.Late) == 0 && len(out.Train) == 0) {
		return
	}
	s.observeTrain(out)
	s.enc.Encode(&sinks.Result{Topic: s.id.topic, Partition: s.id.part, Model: s.learner.Name(), Out: out})
}

// partitionStateVersion 3 adds the anomaly scorer's state; 2 recorded the
// learner's kind beside its name (versions 1 and 2 are still read).
const partitionStateVersion = 3

// appendCheckpoint writes the partition's whole state: the offset it
// covers, the windows (snapshotted by the windowing stage), the learner and
// the outstanding forecasts.
func (s *learnStage) appendCheckpoint(w *binenc.Writer, windows []byte, next int64) {
	w.U32(partitionStateVersion)
	w.String(s.id.topic)
	w.U32(uint32(s.id.part))
	w.I64(next)
	w.Bytes(windows)
	w.String(s.env.cfg.Model.Kind)
	w.String(s.learner.Name())
	s.learner.AppendState(w)
	s.preq.AppendState(w)
	w.Bool(s.anom != nil)
	if s.anom != nil {
		s.anom.AppendState(w)
	}
}

// loadCheckpoint restores what appendCheckpoint wrote into the learning
// stage and win, and returns its offset.
func (s *learnStage) loadCheckpoint(body []byte, win *windowStage) (int64, error) {
	r := binenc.NewReader(body)
	v := r.U32()
	if r.Err() == nil && (v < 1 || v > partitionStateVersion) {
		return 0, fmt.Errorf("partition state version %d, this build reads 1 to %d", v, partitionStateVersion)
	}
	topic, part, next := r.String(256), int(r.U32()), r.I64()
	if r.Err() == nil && (topic != s.id.topic || part != s.id.part) {
		return 0, fmt.Errorf("checkpoint is of %s/%d, not %s/%d", topic, part, s.id.topic, s.id.part)
	}
	windows := r.Bytes(0)
	if r.Err() != nil {
		return 0, r.Err()
	}
	if err := win.win.LoadState(binenc.NewReader(windows)); err != nil {
		return 0, fmt.Errorf("window state: %w", err)
	}
	kind := s.env.cfg.Model.Kind // version 1 did not record it
	if v >= 2 {
		kind = r.String(64)
	}
	name := r.String(256)
	if r.Err() == nil && kind != s.env.cfg.Model.Kind {
		return 0, fmt.Errorf("checkpoint holds a %q learner, the configuration has model.kind %q: "+
			"to start that learner afresh, move the checkpoint away or set another model.name", kind, s.env.cfg.Model.Kind)
	}
	if r.Err() == nil && name != s.learner.Name() {
		return 0, fmt.Errorf("checkpoint holds model %q, config has %q (model.name)", name, s.learner.Name())
	}
	if err := s.learner.LoadState(r); err != nil {
		return 0, fmt.Errorf("learner state: %w", err)
	}
	if err := s.preq.LoadState(r); err != nil {
		return 0, fmt.Errorf("forecast state: %w", err)
	}
	if v >= 3 && r.Bool() {
		if s.anom == nil {
			// The checkpoint was written with anomaly scoring on: skip it.
			a, _ := models.NewAnomaly(AnomalyConfig(s.env.cfg))
			if err := a.LoadState(r); err != nil {
				return 0, fmt.Errorf("anomaly state: %w", err)
			}
		} else if err := s.anom.LoadState(r); err != nil {
			return 0, fmt.Errorf("anomaly state: %w", err)
		}
	}
	if err := r.Done(); err != nil {
		return 0, err
	}
	if next < 0 {
		return 0, errors.New("checkpoint offset is negative")
	}
	win.lastStats = win.win.Stats()
	return next, nil
}
