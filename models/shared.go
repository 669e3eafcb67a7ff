package models

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// One representation space for a consumer group. Every partition's
// learner embeds with the same encoder weights, and the encoder learns from
// every partition, in bulk-synchronous rounds on event time:
//
//   - A learner's clock is the epoch (window end / Epoch) of the newest
//     window it has processed; it only moves forward.
//   - While its clock is in epoch r it embeds with encoder version r and
//     trains a local copy of it. When its clock moves past r it closes r:
//     it publishes its contribution (what it learnt in r: its weights less
//     version r's) and waits for version r', the version of the epoch it
//     moves to.
//   - Version r' is version r plus the merge of every partition's
//     contribution to the epochs r … r'−1; it exists once every partition
//     has closed them or is idle. Nothing but the contributions and the
//     fixed merge rule enters it, so every instance computes the same
//     weights bit for bit, and which version embeds a window is a
//     function of the input: crash, rebalance and replay give the same
//     embeddings.
//   - Idle rule (as Flink's watermark idleness): a partition that has
//     read all of its log and received nothing for model.sync_idle (or
//     reached the end it was to read) declares itself idle: it closes its
//     epoch and the group stops waiting for it. When it gets data again it
//     resumes at the group's frontier, the newest epoch any partition has
//     reached when its resume record comes in the log: the log's order,
//     the same for every instance, fixes that epoch. Both records carry
//     the number of windows the partition had processed, and a partition
//     that restarts from an earlier checkpoint repeats them at the same
//     windows, so its output does not change.
//
// The records live in a log (SyncLog): a compacted Kafka topic in the
// pipeline, memory in the quality harness and replays. Every instance
// folds them in log order only, so that its view of the group at any point
// of the log is every other instance's.

// Close is a partition's record that it has closed every epoch up to
// Through.
type Close struct {
	Partition string
	// Epoch is the epoch whose contribution Delta is (its learning while
	// its clock was there); Delta is nil when it learnt nothing.
	Epoch int64
	// Through is the newest epoch closed (≥ Epoch).
	Through int64
	// Windows is how many windows it trained on in Epoch.
	Windows int
	// AtWindow is the number of windows the partition had processed when
	// it closed. Idle says the partition is idle from here on (the group
	// stops waiting for it); Resume that it has data again, and closes the
	// epochs up to the later of Through and the frontier at this record's
	// place in the log. Both are repeated at AtWindow after a restart.
	AtWindow uint64
	Idle     bool
	Resume   bool
	Delta    []float64
}

// EncoderSync shares an encoder between the partitions of a group.
type EncoderSync interface {
	// Publish records a close; it returns once the record is durable.
	Publish(ctx context.Context, c Close) error
	// Version waits until every partition has closed every epoch before e
	// (or is idle) and returns version e's weights (read only).
	Version(ctx context.Context, e int64) ([]float64, error)
	// Resumed waits until partition's resume record made at window at is
	// in and returns the epoch it resumed at.
	Resumed(ctx context.Context, partition string, at uint64) (int64, error)
	// Recorded returns partition's idle and resume records made at or
	// after window at, in order (resumes with the epoch they resumed at in
	// Through).
	Recorded(partition string, at uint64) []Close
}

// epochOf is the epoch of time t (ns).
func (l *SSL) epochOf(t int64) int64 {
	e := t / l.cfg.Epoch
	if t%l.cfg.Epoch < 0 {
		e--
	}
	return e
}

// deferred is a window whose embedding or training waits for the
// version of its epoch.
type deferred struct {
	epoch int64
	train bool
	x     []float64 // its encoder input (encoderIn × Length, row-major)
	key   string
	end   int64
	loss  lossAcc // a training window's prequential losses
}

// clock moves the learner's clock to row g0's window: it repeats the idle
// and resume records due at this point of the stream (after a restart),
// resumes if idle, and when the window's epoch is newer than the clock's,
// closes the epochs before it and asks for its version (flush first embeds
// what waits under the current one). now reports whether the encoder is at
// the window's version; if not, its embedding and training are deferred
// until the version comes (catchUp), and everything else goes on.
func (l *SSL) clock(ctx context.Context, b *Batch, g0 int, flush func()) (now bool, err error) {
	for len(l.pending) > 0 && l.pending[0].AtWindow <= l.windows {
		c := l.pending[0]
		l.pending = l.pending[1:]
		switch {
		case c.Idle && !l.idle:
			flush()
			if err := l.catchUp(ctx, true); err != nil {
				return false, err
			}
			l.goIdle(c.Through)
		case c.Resume && l.idle:
			l.resumeAt(c.Through)
		}
	}
	e := l.epochOf(int64(b.End[g0]))
	if l.idle {
		c := Close{Partition: l.cfg.Partition, Epoch: l.epoch, Through: max(e, l.target+1) - 1, AtWindow: l.windows, Resume: true}
		if err := l.cfg.Sync.Publish(ctx, c); err != nil {
			return false, fmt.Errorf("publish encoder resume: %w", err)
		}
		at, err := l.cfg.Sync.Resumed(ctx, l.cfg.Partition, l.windows)
		if err != nil {
			return false, err
		}
		l.resumeAt(at)
	}
	if e > l.target {
		l.target = e
	}
	if l.want == math.MinInt64 && l.target > l.epoch {
		flush()
		if err := l.closeTo(ctx, l.target); err != nil {
			return false, err
		}
		if err := l.catchUp(ctx, false); err != nil {
			return false, err
		}
	}
	return l.want == math.MinInt64 && l.epoch == l.target, nil
}

// closeTo publishes this partition's close of the epochs before e (with
// what it learnt in its current one) and waits, from now on, for e.
func (l *SSL) closeTo(ctx context.Context, e int64) error {
	c := l.contribution(e - 1)
	if err := l.cfg.Sync.Publish(ctx, c); err != nil {
		return fmt.Errorf("publish encoder contribution: %w", err)
	}
	l.want = e
	return nil
}

// resumeAt makes a resumed learner wait for version at (the epoch the log
// resumed it at): its windows before then belong to it.
func (l *SSL) resumeAt(at int64) {
	l.idle = false
	l.target = max(l.target, at)
	l.want = at
}

// catchUp adopts the versions the learner waits for, as far as the group
// has them (block: waiting for them), and catches up on the deferred
// windows: each epoch's are embedded (late outputs) and learnt from under
// its version, then the next epoch's close is published.
func (l *SSL) catchUp(ctx context.Context, block bool) error {
	for l.want != math.MinInt64 {
		if !block && !l.ready(l.want) {
			return nil
		}
		if err := l.adopt(ctx, l.want); err != nil {
			return err
		}
		l.want = math.MinInt64
		l.drainEpoch()
		next := l.target
		if len(l.queue) > 0 {
			next = l.queue[0].epoch
		}
		if next > l.epoch {
			if err := l.closeTo(ctx, next); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *SSL) ready(e int64) bool {
	if r, ok := l.cfg.Sync.(interface{ Ready(int64) bool }); ok {
		return r.Ready(e)
	}
	return true
}

// drainEpoch embeds and learns from the deferred windows of the current
// epoch, in the order they came.
func (l *SSL) drainEpoch() {
	n := 0
	for n < len(l.queue) && l.queue[n].epoch == l.epoch {
		n++
	}
	if n == 0 {
		return
	}
	L, D, TB := l.cfg.Length, l.cfg.Dim, l.cfg.TrainBatch
	w := &l.ws
	k := 0
	for _, d := range l.queue[:n] {
		if !d.train {
			k++
		}
	}
	if k > 0 {
		w.x = grow(w.x, encoderIn*k*L)
		x := newMat(encoderIn, k*L, w.x)
		j := 0
		for _, d := range l.queue[:n] {
			if !d.train {
				for r := 0; r < encoderIn; r++ {
					copy(x.row(r)[j*L:(j+1)*L], d.x[r*L:(r+1)*L])
				}
				j++
			}
		}
		w.e = grow(w.e, D*k)
		E := newMat(D, k, w.e)
		l.enc.embed(x, L, E, true)
		j = 0
		for _, d := range l.queue[:n] {
			if !d.train {
				emb := make([]float64, D)
				for r := range emb {
					emb[r] = E.d[r*k+j]
				}
				l.out.Late = append(l.out.Late, LateEmbedding{Key: d.key, End: d.end, Version: l.version, Embedding: emb})
				j++
			}
		}
	}
	for _, d := range l.queue[:n] {
		if !d.train || !l.train {
			continue
		}
		buf := newMat(encoderIn, TB*L, l.buf)
		for r := 0; r < encoderIn; r++ {
			copy(buf.row(r)[l.bufN*L:(l.bufN+1)*L], d.x[r*L:(r+1)*L])
		}
		l.bufEnd[l.bufN] = d.end
		l.bufSeries[l.bufN] = seriesID(d.key)
		l.bufN++
		l.loss.add(d.loss)
		if l.bufN == TB {
			l.out.Train = append(l.out.Train, l.step())
		}
	}
	clear(l.queue[:n])
	l.queue = l.queue[n:]
}

// defer1 queues row i's embedding (train false) or training until the
// version of the learner's clock comes.
func (l *SSL) defer1(b *Batch, i, g0, g1 int, train bool) {
	L := l.cfg.Length
	x := make([]float64, encoderIn*L)
	l.encoderInput(b, i, g0, g1, newMat(encoderIn, L, x), 0)
	l.queue = append(l.queue, deferred{epoch: l.target, train: train, x: x, key: strings.Clone(b.Key(i)), end: int64(b.End[i])})
}

// contribution is this partition's close of the epochs up to through,
// with what it learnt in its current epoch.
func (l *SSL) contribution(through int64) Close {
	c := Close{Partition: l.cfg.Partition, Epoch: l.epoch, Through: through, AtWindow: l.windows}
	if l.epoch == math.MinInt64 {
		c.Epoch = through // nothing learnt before the first epoch
	}
	if l.enc.trainedWindows > 0 {
		l.delta = l.enc.delta(l.delta)
		c.Delta, c.Windows = l.delta, l.enc.trainedWindows
	}
	return c
}

// goIdle marks the learner idle after its idle record, which closed the
// epochs through through with what it had learnt: its weights go back to
// the version it had adopted (the version it resumes at holds that
// learning, merged).
func (l *SSL) goIdle(through int64) {
	l.idle = true
	l.enc.adopt(l.enc.base)
	l.target = max(l.target, through)
}

// adopt waits for version e and makes it the encoder's weights.
func (l *SSL) adopt(ctx context.Context, e int64) error {
	if l.cfg.OnWait != nil && !l.ready(e) {
		l.cfg.OnWait(true)
		defer l.cfg.OnWait(false)
	}
	v, err := l.cfg.Sync.Version(ctx, e)
	if err != nil {
		return err
	}
	l.enc.adopt(v)
	l.epoch, l.version = e, e
	return nil
}

// Idle implements Shared: the idle rule, and the end of a partition's
// input. The learner first catches up on what it deferred (waiting for the
// group), then closes the epochs through its clock's, with what it learnt,
// and declares itself idle: the group stops waiting for it.
func (l *SSL) Idle(ctx context.Context) (*Output, error) {
	if l.cfg.Sync == nil || l.idle {
		return nil, nil
	}
	l.out.reset(0)
	l.out.Late = l.out.Late[:0]
	if err := l.catchUp(ctx, true); err != nil {
		return nil, err
	}
	through := l.target
	if through == math.MinInt64 {
		through = math.MinInt64 + 1 // a partition that never had data
	}
	c := l.contribution(through)
	c.Idle = true
	if err := l.cfg.Sync.Publish(ctx, c); err != nil {
		return nil, fmt.Errorf("publish encoder idleness: %w", err)
	}
	l.goIdle(through)
	return &l.out, nil
}

// Poll implements Polling: it adopts the versions that came since the
// last batch and returns the embeddings of the windows that waited for
// them (nil when none).
func (l *SSL) Poll(ctx context.Context) (*Output, error) {
	if l.cfg.Sync == nil || l.want == math.MinInt64 || !l.ready(l.want) {
		return nil, nil
	}
	l.out.reset(0)
	l.out.Late = l.out.Late[:0]
	if err := l.catchUp(ctx, false); err != nil {
		return nil, err
	}
	return &l.out, nil
}

// CatchUp waits for the group's versions of every epoch the learner has
// windows waiting for, then embeds and learns from them, as Idle does
// first, but without going idle. It is for a caller that changes what the
// learner does at a point of its input (SetTraining): the windows before
// that point are then done as they would have been without waiting.
func (l *SSL) CatchUp(ctx context.Context) (*Output, error) {
	if l.cfg.Sync == nil {
		return nil, nil
	}
	l.out.reset(0)
	l.out.Late = l.out.Late[:0]
	if err := l.catchUp(ctx, true); err != nil {
		return nil, err
	}
	return &l.out, nil
}

// Deferred is the number of windows waiting for their encoder version.
func (l *SSL) Deferred() int { return len(l.queue) }

// restoreSync, after a state load, schedules the idle and resume records
// this partition made from the checkpoint's point in its stream on.
func (l *SSL) restoreSync() {
	if l.cfg.Sync == nil {
		return
	}
	l.pending = l.cfg.Sync.Recorded(l.cfg.Partition, l.windows)
}

// SyncLog is the durable log of a group's closes: Append returns once the
// record is stored, and the subscriber of Subscribe sees every record
// (those before the subscription included, delivered before Subscribe
// returns), each possibly more than once.
type SyncLog interface {
	Append(ctx context.Context, c Close) error
	Subscribe(fn func(Close))
	// Replay calls fn with every record stored so far, in log order,
	// apart from the subscription: for versions older than a GroupSync
	// keeps in memory.
	Replay(ctx context.Context, fn func(Close)) error
}

// GroupSync implements EncoderSync over a SyncLog for the partitions of a
// group: it folds the records, in log order, into per-partition state and
// per-epoch contributions and computes versions from them.
type GroupSync struct {
	log     SyncLog
	mu      sync.Mutex
	changed *sync.Cond
	members map[string]*member
	contrib map[int64]map[string]Close // per epoch, per partition
	// snapV is the version of snapEpoch: the initial weights plus every
	// contribution before it (those are no longer kept).
	snapEpoch int64
	snapV     []float64
	init      []float64
	// past holds versions older than the snapshot, rebuilt from the log
	// for a partition restored from an old checkpoint (nil: none).
	past  *pastVersions
	cache map[int64][]float64
	merge MergeRule
	// Keep is how many epochs behind the slowest partition contributions
	// are kept (default keepEpochs).
	Keep int64
	// OnReadBack, if set, is told when versions older than those kept
	// were read back from the log: from which epoch, how many records,
	// and how long it took.
	OnReadBack func(from int64, records int, took time.Duration)
	// OnBadDelta, if set, is told of a record whose delta does not have
	// this encoder's number of weights (written by another build or
	// shape of the model under the same topic): its close counts, its
	// learning is left out.
	OnBadDelta func(c Close, want int)
}

// member is a partition's state in the log so far.
type member struct {
	through int64 // newest epoch closed
	idle    bool
	// records are its idle and resume records (resumes with the epoch
	// they resumed at in Through), in log order.
	records []Close
}

// MergeRule says how an epoch's contributions become the change of the
// version.
//
// The mean (the default) is federated averaging (McMahan et al. 2017):
// the partitions' deltas, each weighted by its share of the epoch's
// training windows, times Rate. Each partition then steps on
// PartitionBatch windows, train_batch split over the partitions, so that
// the group's step is one of train_batch windows, however many steps a
// partition takes in an epoch: when it takes one, the merge is the step
// one learner would take on the union of the partitions' batches (up to
// Adam's per-partition moments); when it takes many, the partitions'
// paths are averaged, which stays near that learner's path where the sum
// would overshoot it (README, Design: one representation space).
//
// Sum applies the same weighted deltas times the number of contributing
// partitions, as if the updates were made one after the other on the same
// data: right when a partition takes at most one step an epoch, and an
// overshoot by up to the number of partitions when it takes many.
type MergeRule struct {
	Sum  bool
	Rate float64
}

// minPartitionBatch is the smallest optimiser step of a partition under
// the mean merge: the contrastive objectives' negatives are the step's
// other windows, and 4 partitions stepping on 16 windows each learnt
// measurably worse than on 32 (README, Measured).
const minPartitionBatch = 32

// PartitionBatch is the optimiser step, in windows, of each of a group of
// partitions whose learner is configured with trainBatch: trainBatch split
// over the partitions under the mean merge (at least minPartitionBatch,
// so that beyond trainBatch/minPartitionBatch partitions the group's step
// is larger than trainBatch), trainBatch under the sum.
func (r MergeRule) PartitionBatch(trainBatch, partitions int) int {
	if r.Sum || partitions <= 1 {
		return trainBatch
	}
	return max(min(trainBatch, minPartitionBatch), (trainBatch+partitions-1)/partitions)
}

// NewGroupSync shares an encoder whose initial weights are init between
// the partitions named in members, through log.
func NewGroupSync(log SyncLog, members []string, init []float64, rule MergeRule) *GroupSync {
	g := &GroupSync{
		log: log, members: map[string]*member{},
		contrib:   map[int64]map[string]Close{},
		snapEpoch: math.MinInt64, snapV: slices.Clone(init), init: slices.Clone(init),
		cache: map[int64][]float64{}, merge: rule,
	}
	g.changed = sync.NewCond(&g.mu)
	for _, m := range members {
		g.members[m] = &member{through: math.MinInt64}
	}
	log.Subscribe(g.fold)
	return g
}

func (g *GroupSync) member(name string) *member {
	m, ok := g.members[name]
	if !ok {
		m = &member{through: math.MinInt64}
		g.members[name] = m
	}
	return m
}

// frontier is the newest epoch any partition has reached.
func (g *GroupSync) frontier() int64 {
	f := int64(math.MinInt64)
	for _, m := range g.members {
		if m.through != math.MinInt64 && m.through+1 > f {
			f = m.through + 1
		}
	}
	return f
}

// fold takes in one record, in log order (a record seen again is a no-op).
func (g *GroupSync) fold(c Close) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.member(c.Partition)
	for _, r := range m.records {
		if r.AtWindow == c.AtWindow && r.Idle == c.Idle && r.Resume == c.Resume {
			return // seen
		}
	}
	switch {
	case c.Resume:
		at := max(c.Through+1, g.frontier())
		m.idle = false
		m.through = max(m.through, at-1)
		m.records = append(m.records, Close{Partition: c.Partition, Through: at, AtWindow: c.AtWindow, Resume: true})
	default:
		if c.Through > m.through {
			m.through = c.Through
		}
		if c.Idle {
			m.idle = true
			m.records = append(m.records, Close{Partition: c.Partition, Through: c.Through, AtWindow: c.AtWindow, Idle: true})
		}
	}
	c = g.dropBadDelta(c)
	if c.Delta != nil {
		e := g.contrib[c.Epoch]
		if e == nil {
			e = map[string]Close{}
			g.contrib[c.Epoch] = e
		}
		e[c.Partition] = c
	}
	g.changed.Broadcast()
}

// dropBadDelta returns c without its learning if its delta does not have
// the encoder's number of weights (see OnBadDelta): merged, it would index
// past them.
func (g *GroupSync) dropBadDelta(c Close) Close {
	if c.Delta != nil && len(c.Delta) != len(g.init) {
		if g.OnBadDelta != nil {
			g.OnBadDelta(c, len(g.init))
		}
		c.Delta, c.Windows = nil, 0
	}
	return c
}

// Publish implements EncoderSync: the record goes to the log, and comes
// back through it (in log order, with its delta rounded to float32, the
// log's precision, as every other instance sees it).
func (g *GroupSync) Publish(ctx context.Context, c Close) error {
	return g.log.Append(ctx, c)
}

// Frontier is the newest epoch any partition has reached (math.MinInt64:
// none).
func (g *GroupSync) Frontier() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.frontier()
}

// Resumed implements EncoderSync.
func (g *GroupSync) Resumed(ctx context.Context, partition string, at uint64) (int64, error) {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.changed.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		for _, r := range g.member(partition).records {
			if r.Resume && r.AtWindow == at {
				return r.Through, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		g.changed.Wait()
	}
}

// Recorded implements EncoderSync.
func (g *GroupSync) Recorded(partition string, at uint64) []Close {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Close
	for _, r := range g.member(partition).records {
		if r.AtWindow >= at {
			out = append(out, r)
		}
	}
	return out
}

// Ready reports whether version e can be had without waiting.
func (g *GroupSync) Ready(e int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ready(e)
}

// ready reports whether every member has closed every epoch before e, or
// is idle.
func (g *GroupSync) ready(e int64) bool {
	for _, m := range g.members {
		if !m.idle && m.through < e-1 {
			return false
		}
	}
	return true
}

// Version implements EncoderSync.
func (g *GroupSync) Version(ctx context.Context, e int64) ([]float64, error) {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.changed.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for !g.ready(e) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		g.changed.Wait()
	}
	if e < g.snapEpoch {
		return g.pastVersion(ctx, e)
	}
	if v, ok := g.cache[e]; ok {
		return v, nil
	}
	v := g.compute(e)
	g.prune()
	return v, nil
}

// pastVersions is a stretch of versions before the snapshot, read back
// from the log: version from's weights, and the contributions of the
// epochs [from, to).
type pastVersions struct {
	from, to int64
	v        []float64
	contrib  map[int64]map[string]Close
}

// pastVersion returns version e, older than the snapshot, for a partition
// restored from a checkpoint made long before the slowest partition's
// newest close (or before it went idle): from the stretch read back
// before if it covers e, else by reading the log again. The log holds
// every close (keyed by partition and the epoch it closes through), so
// the version is the one computed when it was new: the initial weights
// plus the merges of every epoch before e, in epoch order. It is called
// with g.mu held and releases it while it reads.
func (g *GroupSync) pastVersion(ctx context.Context, e int64) ([]float64, error) {
	if p := g.past; p == nil || e < p.from || e > p.to {
		// Epochs before ready are complete in the log by now: a partition
		// that is idle resumes at the frontier, after them.
		ready := int64(math.MaxInt64)
		for _, m := range g.members {
			if !m.idle {
				ready = min(ready, m.through+1)
			}
		}
		keep := g.Keep
		if keep <= 0 {
			keep = keepEpochs
		}
		to := min(e+keep, ready, g.snapEpoch)
		g.mu.Unlock()
		start := time.Now()
		p, n, err := g.readPast(ctx, e, to)
		g.mu.Lock()
		if err != nil {
			return nil, fmt.Errorf("encoder version %d, older than this instance keeps (%d), from the encoder log: %w", e, g.snapEpoch, err)
		}
		if g.OnReadBack != nil {
			g.OnReadBack(e, n, time.Since(start))
		}
		g.past = p
	}
	p := g.past
	var epochs []int64
	for k := range p.contrib {
		if k < e {
			epochs = append(epochs, k)
		}
	}
	slices.Sort(epochs)
	for _, k := range epochs {
		applyEpoch(p.v, p.contrib[k], g.merge)
		delete(p.contrib, k)
	}
	p.from = e
	return slices.Clone(p.v), nil
}

// readPast reads the log from its start: version from and the
// contributions of the epochs [from, to), and the number of records read.
func (g *GroupSync) readPast(ctx context.Context, from, to int64) (*pastVersions, int, error) {
	contrib := map[int64]map[string]Close{}
	n := 0
	err := g.log.Replay(ctx, func(c Close) {
		n++
		if c = g.dropBadDelta(c); c.Delta == nil || c.Epoch >= to {
			return
		}
		e := contrib[c.Epoch]
		if e == nil {
			e = map[string]Close{}
			contrib[c.Epoch] = e
		}
		e[c.Partition] = c
	})
	if err != nil {
		return nil, n, err
	}
	p := &pastVersions{from: from, to: to, v: slices.Clone(g.init), contrib: map[int64]map[string]Close{}}
	var epochs []int64
	for k, m := range contrib {
		if k < from {
			epochs = append(epochs, k)
		} else {
			p.contrib[k] = m
		}
	}
	slices.Sort(epochs)
	for _, k := range epochs {
		applyEpoch(p.v, contrib[k], g.merge)
	}
	return p, n, nil
}

// keepEpochs is how many epochs behind the slowest partition the
// contributions are kept, for partitions that restart from a checkpoint a
// few epochs back; older ones are folded into the snapshot.
const keepEpochs = 64

// compute returns version e: the newest cached version at or before e (or
// the snapshot) plus the merges of the epochs from it to e with
// contributions, in epoch order, each summing its partitions in name
// order: the same operations on every instance.
func (g *GroupSync) compute(e int64) []float64 {
	from, base := g.snapEpoch, g.snapV
	for ce, cv := range g.cache {
		if ce <= e && ce > from {
			from, base = ce, cv
		}
	}
	var epochs []int64
	for k := range g.contrib {
		if k >= from && k < e {
			epochs = append(epochs, k)
		}
	}
	slices.Sort(epochs)
	v := slices.Clone(base)
	for _, k := range epochs {
		g.apply(v, k)
	}
	g.cache[e] = v
	return v
}

// prune folds the contributions of the epochs keepEpochs behind the
// slowest partition into the snapshot, and drops old cached versions.
func (g *GroupSync) prune() {
	low := int64(math.MaxInt64)
	for _, m := range g.members {
		if !m.idle {
			low = min(low, m.through)
		}
	}
	if low == math.MaxInt64 {
		return
	}
	keep := g.Keep
	if keep <= 0 {
		keep = keepEpochs
	}
	if low == math.MinInt64 || low-keep <= g.snapEpoch {
		return
	}
	to := low - keep
	var epochs []int64
	for k := range g.contrib {
		if k < to {
			epochs = append(epochs, k)
		}
	}
	slices.Sort(epochs)
	v := slices.Clone(g.snapV)
	for _, k := range epochs {
		g.apply(v, k)
		delete(g.contrib, k)
	}
	g.snapEpoch, g.snapV = to, v
	for k := range g.cache {
		if k < to {
			delete(g.cache, k)
		}
	}
}

// apply adds epoch k's merged contributions to v.
func (g *GroupSync) apply(v []float64, k int64) {
	applyEpoch(v, g.contrib[k], g.merge)
}

// applyEpoch adds one epoch's merged contributions, m (per partition), to
// v, the partitions in name order.
func applyEpoch(v []float64, m map[string]Close, rule MergeRule) {
	names := make([]string, 0, len(m))
	total := 0
	for n, c := range m {
		names = append(names, n)
		total += c.Windows
	}
	if total == 0 {
		return
	}
	sort.Strings(names)
	scale := rule.Rate / float64(total)
	if rule.Sum {
		scale *= float64(len(names))
	}
	for _, n := range names {
		c := m[n]
		w := scale * float64(c.Windows)
		for i, d := range c.Delta {
			v[i] += w * d
		}
	}
}

// MemLog is a SyncLog in memory, for the learners of one process that
// need not outlive it (quality harness, replays).
type MemLog struct {
	mu   sync.Mutex
	recs []Close
	subs []func(Close)
}

// Append implements SyncLog.
func (m *MemLog) Append(_ context.Context, c Close) error {
	// Round trip through the encoding, as a log that stores records would.
	c, err := DecodeClose(EncodeClose(c))
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock() // every subscriber sees the records in the log's order
	m.recs = append(m.recs, c)
	for _, f := range m.subs {
		f(c)
	}
	return nil
}

// Replay implements SyncLog.
func (m *MemLog) Replay(_ context.Context, fn func(Close)) error {
	m.mu.Lock()
	recs := m.recs[:len(m.recs):len(m.recs)]
	m.mu.Unlock()
	for _, c := range recs {
		fn(c)
	}
	return nil
}

// Subscribe implements SyncLog.
func (m *MemLog) Subscribe(fn func(Close)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.recs {
		fn(c)
	}
	m.subs = append(m.subs, fn)
}

// InitialEncoder returns the initial encoder weights of a learner with
// configuration c (the same for every partition of a group).
func InitialEncoder(c SSLConfig) ([]float64, error) {
	c.Sync = nil
	l, err := NewSSL(c)
	if err != nil {
		return nil, err
	}
	return l.EncoderParams(), nil
}

// closeVersion is the encoding version of a Close record.
const closeVersion = 1

// EncodeClose encodes a Close for a SyncLog: its delta as float32 (half
// the bytes; every instance folds the same rounded values).
func EncodeClose(c Close) []byte {
	b := make([]byte, 0, 64+len(c.Partition)+4*len(c.Delta))
	b = append(b, closeVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.Epoch))
	b = binary.LittleEndian.AppendUint64(b, uint64(c.Through))
	b = binary.LittleEndian.AppendUint64(b, uint64(c.Windows))
	b = binary.LittleEndian.AppendUint64(b, c.AtWindow)
	flags := byte(0)
	if c.Idle {
		flags |= 1
	}
	if c.Resume {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Partition)))
	b = append(b, c.Partition...)
	hasDelta := byte(0)
	if c.Delta != nil {
		hasDelta = 1
	}
	b = append(b, hasDelta)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Delta)))
	for _, d := range c.Delta {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(d)))
	}
	return b
}

// DecodeClose decodes what EncodeClose wrote.
func DecodeClose(b []byte) (Close, error) {
	var c Close
	bad := fmt.Errorf("encoder record of %d bytes is corrupt", len(b))
	if len(b) < 1+32+1+4 || b[0] != closeVersion {
		return c, bad
	}
	p := 1
	u64 := func() uint64 { v := binary.LittleEndian.Uint64(b[p:]); p += 8; return v }
	c.Epoch, c.Through = int64(u64()), int64(u64())
	c.Windows, c.AtWindow = int(u64()), u64()
	c.Idle, c.Resume = b[p]&1 != 0, b[p]&2 != 0
	p++
	n := int(binary.LittleEndian.Uint32(b[p:]))
	p += 4
	if n > len(b)-p-5 {
		return c, bad
	}
	c.Partition = string(b[p : p+n])
	p += n
	has := b[p] == 1
	p++
	m := int(binary.LittleEndian.Uint32(b[p:]))
	p += 4
	if len(b)-p != 4*m {
		return c, bad
	}
	if has {
		c.Delta = make([]float64, m)
		for i := range c.Delta {
			c.Delta[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[p:])))
			p += 4
		}
	}
	return c, nil
}
