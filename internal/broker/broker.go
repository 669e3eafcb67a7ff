// Package broker runs an in-process Kafka-protocol cluster (franz-go's kfake)
// on loopback, for the demo, the tests and local development. Clients talk
// to it over TCP exactly as to a real broker; nothing in tsrep depends on it
// being kfake.
package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configure a broker.
type Options struct {
	// Port to listen on (127.0.0.1); 0 picks a free one.
	Port int
	// DataDir persists the log and group offsets across restarts; empty
	// keeps everything in memory.
	DataDir string
	// Partitions is the partition count of auto-created and seeded topics.
	Partitions int
	// Topics are created at start.
	Topics []string
	// Extra options (TLS, SASL, faults) for tests.
	Extra []kfake.Opt
}

// Broker is a running cluster of one broker.
type Broker struct {
	c *kfake.Cluster
}

// Start starts a broker.
func Start(o Options) (*Broker, error) {
	if o.Partitions < 1 {
		o.Partitions = 1
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(o.Port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.ClusterID("tsrep-local"),
	}
	if len(o.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(o.Partitions), o.Topics...))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	opts = append(opts, o.Extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	return &Broker{c: c}, nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.c.ListenAddrs()[0] }

// Cluster is the kfake cluster, for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker (and, with a DataDir, persists its state).
func (b *Broker) Close() { b.c.Close() }
