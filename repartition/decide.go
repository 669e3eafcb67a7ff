package repartition

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/internal/clock"
)

// Decision is whether the service repartitions its input, and why.
type Decision struct {
	Repartition bool
	Why         string
	// Report is the sample the decision was made from, if any.
	Report *Report
	// Warning, if set, is something the operator should know.
	Warning string
}

// Decide applies kafka.repartition when the service starts. "off" and
// "always" decide alone. "auto" is decided once, at start, so that a
// running group never switches under its own feet, by the first rule that
// applies:
//
//  1. The repartition group has committed offsets on the input: the group
//     repartitions already, and keeps doing so (going back to reading the
//     input directly is an operator's decision: "off").
//  2. Instances of the group run: follow them (repartition if they read the
//     internal topic or run the repartition group, else read directly).
//     Instances started together on a new group sample the same messages
//     and decide alike.
//  3. A sample of the newest SampleMessages messages of each input
//     partition: repartition if a series is found in more than one
//     partition. A new group on empty topics waits for the first messages
//     (and kafka.repartition_idle more, to see more than the very first),
//     unless untilEnd (there is nothing to read).
//
// Switching a group that read its input directly to repartitioning hands
// each input partition over at the group's committed offset; the learning
// pipeline then starts on the internal topic with new per-series state.
func Decide(ctx context.Context, c *ingest.Cluster, cfg config.Config, untilEnd bool, log *slog.Logger, clk clock.Clock) (Decision, error) {
	switch cfg.Kafka.Repartition {
	case "off":
		d := Decision{Why: "kafka.repartition = \"off\""}
		// Reading directly what the group repartitioned before starts at
		// the group's own offsets on the input, from before that.
		for _, t := range cfg.Kafka.Topics {
			own, main, err := committedBoth(ctx, c, cfg, t)
			if err != nil {
				return Decision{}, err
			}
			for p, o := range own {
				if o > main[p] {
					d.Warning = fmt.Sprintf("group %s repartitioned %s/%d up to offset %d, further than group %s read it directly (%d): "+
						"with kafka.repartition = \"off\" the input from there is read again, and what the internal topic %s still holds is not. "+
						"Keep kafka.repartition on, or commit group %s's offsets on the input where the repartition group's are once the internal topic is read",
						cfg.RepartitionGroup(), t, p, o, cfg.Kafka.Group, main[p], cfg.RepartitionTopic(), cfg.Kafka.Group)
					return d, nil
				}
			}
		}
		return d, nil
	case "always":
		return Decision{Repartition: true, Why: "kafka.repartition = \"always\""}, nil
	}
	if clk == nil {
		clk = clock.Real{}
	}
	// 1. The group repartitions already.
	mainCommitted := false
	for _, t := range cfg.Kafka.Topics {
		own, main, err := committedBoth(ctx, c, cfg, t)
		if err != nil {
			return Decision{}, err
		}
		for _, o := range own {
			if o >= 0 {
				return Decision{Repartition: true, Why: "kafka.repartition = \"auto\": group " + cfg.RepartitionGroup() + " has repartitioned this input before"}, nil
			}
		}
		for _, o := range main {
			mainCommitted = mainCommitted || o >= 0
		}
	}
	// 2. Follow the running instances.
	if ts, err := c.GroupTopics(ctx, cfg.RepartitionGroup()); err == nil && len(ts) > 0 {
		return Decision{Repartition: true, Why: "kafka.repartition = \"auto\": instances of group " + cfg.RepartitionGroup() + " are running"}, nil
	}
	if ts, err := c.GroupTopics(ctx, cfg.Kafka.Group); err == nil && len(ts) > 0 {
		if slices.Contains(ts, cfg.RepartitionTopic()) {
			return Decision{Repartition: true, Why: "kafka.repartition = \"auto\": the running instances of group " + cfg.Kafka.Group + " read " + cfg.RepartitionTopic()}, nil
		}
		return Decision{Why: "kafka.repartition = \"auto\": the running instances of group " + cfg.Kafka.Group + " read the input directly"}, nil
	}
	// 3. Sample the input.
	waited := false
	for {
		r, err := Sample(ctx, c, cfg, SampleMessages)
		if err != nil {
			return Decision{}, err
		}
		if r.Messages == 0 && !untilEnd && !mainCommitted {
			if !waited {
				log.Info("kafka.repartition = \"auto\": waiting for the first messages to decide whether the input is keyed by series", "topics", cfg.Kafka.Topics)
			}
			waited = true
			select {
			case <-ctx.Done():
				return Decision{}, ctx.Err()
			case <-clk.After(time.Second):
			}
			continue
		}
		if waited {
			// The topics were empty: let more than the very first
			// messages come in before sampling for the decision.
			waited = false
			select {
			case <-ctx.Done():
				return Decision{}, ctx.Err()
			case <-clk.After(cfg.Kafka.RepartitionIdle.Duration):
			}
			continue
		}
		d := Decision{Repartition: r.Unkeyed(), Report: &r}
		if d.Repartition {
			d.Why = fmt.Sprintf("kafka.repartition = \"auto\": the input is not keyed by series: %s", r)
		} else {
			d.Why = fmt.Sprintf("kafka.repartition = \"auto\": the input is keyed by series (%d series sampled from %d messages, none in two partitions)", r.Series, r.Messages)
		}
		return d, nil
	}
}

// committedBoth returns the committed offsets on every partition of topic
// of the repartition group (own) and of the group itself (main); -1: none.
func committedBoth(ctx context.Context, c *ingest.Cluster, cfg config.Config, topic string) (own, main map[int]int64, err error) {
	n, err := c.Partitions(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	if own, err = c.Committed(ctx, cfg.RepartitionGroup(), topic, parts); err != nil {
		return nil, nil, err
	}
	if main, err = c.Committed(ctx, cfg.Kafka.Group, topic, parts); err != nil {
		return nil, nil, err
	}
	return own, main, nil
}
