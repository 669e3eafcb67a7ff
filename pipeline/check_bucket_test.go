package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tsrep/tsrep/internal/broker"
	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/pipeline"
)

// TestPreflightMissingBucket: on a fresh InfluxDB (1.8 answers "no
// database") --dry-run says the bucket will be created when
// influx.create_bucket is on, and fails naming the key when it is off; a
// missing retention policy, which create_bucket does not create, fails.
func TestPreflightMissingBucket(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	b := testenv.StartBroker(t, broker.Options{Partitions: 1, Topics: []string{"fresh"}})
	in := testenv.StartInflux(t)
	cfg := testConfig(t, b.Addr(), "fresh", in)

	f := func(bucket string, create bool, wantNote, wantErr string) {
		t.Helper()
		cfg.Influx.Bucket, cfg.Influx.CreateBucket = bucket, create
		c := checkOf(t, pipeline.Preflight(ctx, cfg, testLogger(t)), "bucket ")
		switch {
		case wantErr == "" && (c.Err != nil || !strings.Contains(c.Note, wantNote)):
			t.Errorf("bucket %s, create_bucket %v: %+v, want note %q", bucket, create, c, wantNote)
		case wantErr != "" && (c.Err == nil || !strings.Contains(c.Err.Error(), wantErr)):
			t.Errorf("bucket %s, create_bucket %v: %+v, want error %q", bucket, create, c, wantErr)
		}
	}
	f(in.Database, true, "readable", "")
	f(in.Database+"/autogen", true, "readable", "")
	f(in.Database+"_fresh", true, "will be created", "")
	f(in.Database+"_fresh/autogen", true, "will be created", "")
	f(in.Database+"_fresh", false, "", "influx.create_bucket = true")
	f(in.Database+"/nope", true, "", "retention policy")
}
