package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/models"
)

// The group's shared encoder (see models/shared.go): one models.GroupSync
// per process, over the encoder log — a compacted topic, EncoderTopic, in
// a group run; memory in a replay — whose members are every partition of
// the input topics.

// EncoderTopic is the compacted topic holding the encoder rounds of the
// group and model: "<kafka.group>-<model.name>-encoder".
func EncoderTopic(cfg config.Config) string {
	return config.TopicName(cfg.Kafka.Group, cfg.Model.Name+"-encoder")
}

// memberName names a partition in the encoder log.
func memberName(topic string, part int) string { return topic + "/" + strconv.Itoa(part) }

// kafkaSyncLog is a models.SyncLog over an ingest.BlobLog: one record per
// close, keyed by partition and the epoch it closes through.
type kafkaSyncLog struct {
	log  *ingest.BlobLog
	mu   sync.Mutex
	fn   func(models.Close)
	bad  func(error)
	warn func(msg string, args ...any)
}

// Append implements models.SyncLog: it retries with backoff until the
// record is stored or ctx ends (the brokers may be restarting; a record
// written twice is the same record).
func (k *kafkaSyncLog) Append(ctx context.Context, c models.Close) error {
	key, value := fmt.Sprintf("c/%s/%d", c.Partition, c.Through), models.EncodeClose(c)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
	for {
		err := k.log.Put(ctx, key, value)
		if err == nil || ctx.Err() != nil {
			return err
		}
		wait := bo.NextBackOff()
		k.warn("writing to the encoder topic failed; retrying", "record", key, "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (k *kafkaSyncLog) Subscribe(fn func(models.Close)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fn = fn
}

// Replay implements models.SyncLog.
func (k *kafkaSyncLog) Replay(ctx context.Context, fn func(models.Close)) error {
	return k.log.Scan(ctx, func(key string, value []byte) {
		c, err := models.DecodeClose(value)
		if err != nil {
			k.bad(fmt.Errorf("encoder log record %q: %w", key, err))
			return
		}
		fn(c)
	})
}

// start reads the log to its end (delivering every record before it
// returns), then follows it.
func (k *kafkaSyncLog) start(ctx context.Context) error {
	return k.log.Follow(ctx, func(key string, value []byte) {
		c, err := models.DecodeClose(value)
		if err != nil {
			k.bad(fmt.Errorf("encoder log record %q: %w", key, err))
			return
		}
		k.mu.Lock()
		fn := k.fn
		k.mu.Unlock()
		if fn != nil {
			fn(c)
		}
	})
}

// sharedEncoder is a process's handle on its group's encoder.
type sharedEncoder struct {
	g *models.GroupSync
	// batch is each partition's optimiser step (MergeRule.PartitionBatch).
	batch int
	close func()
}

// openSharedEncoder sets up the group's encoder over Kafka: the members are
// every partition of the input topics.
func (p *Pipeline) openSharedEncoder(ctx context.Context) (*sharedEncoder, error) {
	var members []string
	for _, t := range p.cfg.Kafka.Topics {
		n, err := p.o.Kafka.Partitions(ctx, t)
		if err != nil {
			return nil, err
		}
		for i := 0; i < n; i++ {
			members = append(members, memberName(t, i))
		}
	}
	bl, err := p.o.Kafka.BlobLog(ctx, EncoderTopic(p.cfg), p.log)
	if err != nil {
		return nil, fmt.Errorf("encoder topic: %w", err)
	}
	sl := &kafkaSyncLog{log: bl, warn: p.log.Warn, bad: func(err error) { p.log.Error("skipping an unreadable encoder record", "err", err) }}
	g, err := newGroupSync(p.cfg, sl, members)
	if err != nil {
		return nil, err
	}
	g.OnReadBack = func(from int64, records int, took time.Duration) {
		p.log.Info("encoder versions older than this instance keeps read back from the encoder topic",
			"topic", bl.Topic(), "from_epoch", from, "records", records, "took", took.Round(time.Millisecond))
	}
	g.OnBadDelta = func(c models.Close, want int) {
		p.log.Error("an encoder record's delta has another number of weights than this model's; its learning is left out (was the topic written by another build or model shape? give the model another model.name)",
			"topic", bl.Topic(), "partition", c.Partition, "epoch", c.Epoch, "weights", len(c.Delta), "want", want)
	}
	if err := sl.start(ctx); err != nil {
		return nil, fmt.Errorf("read the encoder topic %s: %w", bl.Topic(), err)
	}
	p.log.Info("shared encoder", "topic", bl.Topic(), "partitions", len(members), "frontier_epoch", g.Frontier())
	return &sharedEncoder{g: g, batch: partitionBatch(p.cfg, len(members)), close: bl.Close}, nil
}

// memSharedEncoder is the shared encoder of a replay: in memory, its
// members the partitions replayed.
func memSharedEncoder(cfg config.Config, members []string) (*sharedEncoder, error) {
	g, err := newGroupSync(cfg, &models.MemLog{}, members)
	if err != nil {
		return nil, err
	}
	return &sharedEncoder{g: g, batch: partitionBatch(cfg, len(members)), close: func() {}}, nil
}

// MergeRule is the shared encoder's merge configured in cfg.Model.
func MergeRule(cfg config.Config) models.MergeRule {
	return models.MergeRule{Sum: cfg.Model.Merge == "sum", Rate: cfg.Model.MergeRate}
}

// partitionBatch is the optimiser step of each of a group's partitions.
func partitionBatch(cfg config.Config, partitions int) int {
	return MergeRule(cfg).PartitionBatch(cfg.Model.TrainBatch, partitions)
}

func newGroupSync(cfg config.Config, log models.SyncLog, members []string) (*models.GroupSync, error) {
	init, err := models.InitialEncoder(SSLConfig(cfg))
	if err != nil {
		return nil, err
	}
	return models.NewGroupSync(log, members, init, MergeRule(cfg)), nil
}

// sharedLearner builds partition (topic, part)'s learner on the shared
// encoder, its waits reported to the health.
func (p *Pipeline) sharedLearner(se *sharedEncoder, topic string, part int) (models.Learner, error) {
	c := SSLConfig(p.cfg)
	c.Sync, c.Partition = se.g, memberName(topic, part)
	c.TrainBatch = se.batch
	id := partitionID{topic, part}
	c.OnWait = func(waiting bool) {
		if waiting {
			p.env.health.set(id, stateWaiting, "waiting for the other partitions' encoder contributions")
		} else {
			p.env.health.set(id, stateRunning, "")
		}
	}
	return models.NewSSL(c)
}

var _ = slog.Default
