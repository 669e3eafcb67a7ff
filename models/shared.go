package models

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
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
//     has closed them. Nothing but the contributions and the fixed merge
//     rule enters it, so every instance computes the same weights bit for
//     bit, and which version embeds a window is a function of the input:
//     crash, rebalance and replay give the same embeddings.
//   - Idle rule (as Flink's watermark idleness): a partition that has
//     read all of its log and received nothing for model.sync_idle closes
//     its epochs up to the group's frontier (the newest epoch any
//     partition has reached), so the group need not wait for it. The close
//     is recorded with the number of windows the partition had processed,
//     and a partition that restarts from an earlier checkpoint makes the
//     same closes at the same windows, so its output does not change.
//
// The records live in a log (SyncLog): a compacted Kafka topic in the
// pipeline, memory in the quality harness and replays.

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
	// it closed; Idle says the close came from the idle rule (and is to be
	// repeated at AtWindow after a restart).
	AtWindow uint64
	Idle     bool
	Delta    []float64
}

// EncoderSync shares an encoder between the partitions of a group.
type EncoderSync interface {
	// Publish records a close; it returns once the record is durable.
	Publish(ctx context.Context, c Close) error
	// Version waits until every partition has closed every epoch before e
	// and returns version e's weights (read only).
	Version(ctx context.Context, e int64) ([]float64, error)
	// Frontier is the newest epoch any partition has reached (closed
	// through it − 1), math.MinInt64 if none.
	Frontier() int64
	// Idles returns the idle closes partition made after window at.
	Idles(partition string, at uint64) []Close
}

// epochOf is the epoch of time t (ns).
func (l *SSL) epochOf(t int64) int64 {
	e := t / l.cfg.Epoch
	if t%l.cfg.Epoch < 0 {
		e--
	}
	return e
}

// clock moves the learner's clock to the epoch of row g0's window, if that
// is newer, first applying any idle close recorded for this point of the
// stream.
func (l *SSL) clock(ctx context.Context, b *Batch, g0 int) error {
	if l.cfg.Sync == nil {
		return nil
	}
	for len(l.pending) > 0 && l.pending[0].AtWindow <= l.windows {
		c := l.pending[0]
		l.pending = l.pending[1:]
		if err := l.closeThrough(ctx, c.Through, true, false); err != nil {
			return err
		}
	}
	if e := l.epochOf(int64(b.End[g0])); e > l.epoch {
		return l.advance(ctx, e)
	}
	return nil
}

// advance closes the epochs before e (a partition's first window closes
// every epoch before its own, having learnt nothing in them) and adopts
// version e.
func (l *SSL) advance(ctx context.Context, e int64) error {
	if err := l.closeThrough(ctx, e-1, false, true); err != nil {
		return err
	}
	return l.adopt(ctx, e)
}

// closeThrough publishes this partition's close of every epoch up to
// through (idle: by the idle rule; publish false when replaying a
// recorded close, which is already in the log).
func (l *SSL) closeThrough(ctx context.Context, through int64, idle, publish bool) error {
	if through < l.epoch && l.epoch != math.MinInt64 {
		return nil
	}
	c := Close{Partition: l.cfg.Partition, Epoch: l.epoch, Through: through, AtWindow: l.windows, Idle: idle}
	if l.enc.trainedWindows > 0 {
		l.delta = l.enc.delta(l.delta)
		c.Delta, c.Windows = l.delta, l.enc.trainedWindows
	}
	if l.epoch == math.MinInt64 {
		c.Epoch = through // nothing learnt before the first epoch
	}
	if publish || idle {
		if err := l.cfg.Sync.Publish(ctx, c); err != nil {
			return fmt.Errorf("publish encoder contribution: %w", err)
		}
	}
	l.epoch = through + 1
	// Until the next window needs it, keep learning on the current
	// weights; the new version is adopted by the next advance.
	if idle {
		return l.adopt(ctx, l.epoch)
	}
	return nil
}

// adopt waits for version e and makes it the encoder's weights.
func (l *SSL) adopt(ctx context.Context, e int64) error {
	v, err := l.cfg.Sync.Version(ctx, e)
	if err != nil {
		return err
	}
	l.enc.adopt(v)
	l.epoch, l.version = e, e
	return nil
}

// Idle implements Shared: the idle rule.
func (l *SSL) Idle(ctx context.Context) error {
	if l.cfg.Sync == nil {
		return nil
	}
	f := l.cfg.Sync.Frontier()
	if f == math.MinInt64 || f <= l.epoch {
		return nil
	}
	return l.closeThrough(ctx, f-1, true, true)
}

// restoreSync, after a state load, schedules the idle closes this
// partition made from the checkpoint's point in its stream on (one made at
// that very point, after the checkpoint, is repeated; one made before it
// is a no-op, its epochs already closed).
func (l *SSL) restoreSync() {
	if l.cfg.Sync == nil {
		return
	}
	l.pending = l.cfg.Sync.Idles(l.cfg.Partition, l.windows)
}

// SyncLog is the durable, ordered log of a group's closes: Append returns
// once the record is stored, and the subscriber of Subscribe sees every
// record (those before the subscription included) in log order.
type SyncLog interface {
	Append(ctx context.Context, c Close) error
	Subscribe(fn func(Close))
}

// GroupSync implements EncoderSync over a SyncLog for the partitions of a
// group: it folds the records into per-partition frontiers and per-epoch
// contributions and computes versions from them.
type GroupSync struct {
	log     SyncLog
	mu      sync.Mutex
	changed *sync.Cond
	members map[string]bool
	through map[string]int64           // per partition: newest epoch closed
	contrib map[int64]map[string]Close // per epoch, per partition
	idles   map[string][]Close
	init    []float64
	// the newest version computed: epoch and weights, and the epoch of the
	// newest contribution folded into it
	vEpoch int64
	v      []float64
	cache  map[int64][]float64
	// merge scales the sum of the contributions (see MergeRate).
	merge MergeRule
}

// MergeRule says how an epoch's contributions become the change of the
// version: each partition's delta weighted by its share of the epoch's
// training windows, times Rate·(number of contributing partitions). Rate
// 1 applies the partitions' updates as if made one after the other on the
// same data (their sum when they trained on as many windows each); Rate
// 1/contributors would be federated averaging.
type MergeRule struct {
	Rate float64
}

// NewGroupSync shares an encoder whose initial weights are init between
// the partitions named in members, through log.
func NewGroupSync(log SyncLog, members []string, init []float64, rule MergeRule) *GroupSync {
	g := &GroupSync{
		log: log, members: map[string]bool{}, through: map[string]int64{},
		contrib: map[int64]map[string]Close{}, idles: map[string][]Close{},
		init: slices.Clone(init), vEpoch: math.MinInt64, v: slices.Clone(init),
		cache: map[int64][]float64{}, merge: rule,
	}
	g.changed = sync.NewCond(&g.mu)
	for _, m := range members {
		g.members[m] = true
		g.through[m] = math.MinInt64
	}
	log.Subscribe(g.fold)
	return g
}

// fold takes in one record.
func (g *GroupSync) fold(c Close) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.members[c.Partition] {
		g.members[c.Partition] = true
		g.through[c.Partition] = math.MinInt64
	}
	if c.Through > g.through[c.Partition] {
		g.through[c.Partition] = c.Through
	}
	if c.Delta != nil {
		m := g.contrib[c.Epoch]
		if m == nil {
			m = map[string]Close{}
			g.contrib[c.Epoch] = m
		}
		m[c.Partition] = c
	}
	if c.Idle {
		g.idles[c.Partition] = append(g.idles[c.Partition], c)
	}
	g.changed.Broadcast()
}

// Publish implements EncoderSync.
func (g *GroupSync) Publish(ctx context.Context, c Close) error {
	c.Delta = slices.Clone(c.Delta)
	return g.log.Append(ctx, c)
}

// Frontier implements EncoderSync.
func (g *GroupSync) Frontier() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := int64(math.MinInt64)
	for _, t := range g.through {
		if t != math.MinInt64 && t+1 > f {
			f = t + 1
		}
	}
	return f
}

// Idles implements EncoderSync.
func (g *GroupSync) Idles(partition string, at uint64) []Close {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Close
	for _, c := range g.idles[partition] {
		if c.AtWindow >= at {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AtWindow < out[j].AtWindow })
	return out
}

// ready reports whether every member has closed every epoch before e.
func (g *GroupSync) ready(e int64) bool {
	for _, t := range g.through {
		if t < e-1 {
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
	if v, ok := g.cache[e]; ok {
		return v, nil
	}
	return g.compute(e), nil
}

// compute returns version e: the initial weights plus the merges of every
// epoch before e with contributions, in epoch order, each merge summing
// its partitions in name order (the same operations everywhere).
func (g *GroupSync) compute(e int64) []float64 {
	var epochs []int64
	for k := range g.contrib {
		if k < e && (g.vEpoch == math.MinInt64 || k >= g.vEpoch) {
			epochs = append(epochs, k)
		}
	}
	if e < g.vEpoch {
		// An older version than the newest computed: from the start.
		epochs = epochs[:0]
		for k := range g.contrib {
			if k < e {
				epochs = append(epochs, k)
			}
		}
		v := slices.Clone(g.init)
		slices.Sort(epochs)
		for _, k := range epochs {
			g.apply(v, k)
		}
		g.cache[e] = v
		return v
	}
	slices.Sort(epochs)
	v := slices.Clone(g.v)
	for _, k := range epochs {
		g.apply(v, k)
	}
	g.v, g.vEpoch = v, e
	g.cache[e] = v
	// Keep the few versions partitions one epoch apart can ask for.
	for k := range g.cache {
		if k < e-4 {
			delete(g.cache, k)
		}
	}
	return v
}

// apply adds epoch k's merged contributions to v.
func (g *GroupSync) apply(v []float64, k int64) {
	m := g.contrib[k]
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
	scale := g.merge.Rate * float64(len(names)) / float64(total)
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
	m.mu.Lock()
	m.recs = append(m.recs, c)
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	for _, f := range subs {
		f(c)
	}
	return nil
}

// Subscribe implements SyncLog.
func (m *MemLog) Subscribe(fn func(Close)) {
	m.mu.Lock()
	recs := slices.Clone(m.recs)
	m.subs = append(m.subs, fn)
	m.mu.Unlock()
	for _, c := range recs {
		fn(c)
	}
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

var _ arrow.RecordBatch // (the learner's batches)
