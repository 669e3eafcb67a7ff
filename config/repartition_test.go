package config

import (
	"strings"
	"testing"
)

func TestRepartitionKeys(t *testing.T) {
	f := func(toml, wantKey string) {
		t.Helper()
		_, err := Parse([]byte(toml), "test.toml")
		if err == nil || !strings.Contains(err.Error(), wantKey) {
			t.Errorf("%q: error %v does not name %s", toml, err, wantKey)
		}
	}
	f("[kafka]\nrepartition = \"sometimes\"", "kafka.repartition")
	f("[kafka]\nrepartition_retention = \"-1h\"", "kafka.repartition_retention")
	f("[kafka]\nrepartition_idle = \"0s\"", "kafka.repartition_idle")
	f("[kafka]\ngroup = \"g\"\ntopics = [\"g-repartition\"]\nrepartition = \"always\"", "kafka.topics")
	c, err := Parse([]byte("[kafka]\ngroup = \"g\"\ntopics = [\"g-repartition\"]\nrepartition = \"off\""), "test.toml")
	if err != nil {
		t.Fatalf("reading the internal topic directly with repartition off: %v", err)
	}
	if c.RepartitionTopic() != "g-repartition" || c.RepartitionGroup() != "g-repartition" {
		t.Fatalf("topic %q, group %q", c.RepartitionTopic(), c.RepartitionGroup())
	}
	if d := Default(); d.Kafka.Repartition != "auto" || d.RepartitionTopic() != "tsrep-repartition" {
		t.Fatalf("defaults: %q %q", d.Kafka.Repartition, d.RepartitionTopic())
	}
}
