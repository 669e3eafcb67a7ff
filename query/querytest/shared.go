package querytest

import (
	"context"
	"sync"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
)

// Env is the fixture written into a database of the test influxd, with a
// query client on that database.
type Env struct {
	Fixture *Fixture
	Influx  testenv.Influx
	Client  *query.Client
}

var (
	shared     Env
	sharedOnce sync.Once
	sharedErr  error
)

// Shared writes the fixture once per test binary into a fresh database and
// returns it: the tests that use it only read.
func Shared(t testing.TB) Env {
	t.Helper()
	sharedOnce.Do(func() {
		in := testenv.StartInflux(t)
		fx := New()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if sharedErr = fx.Write(ctx, in.URL, in.Database); sharedErr != nil {
			return
		}
		c := influxdb2.NewClient(in.URL, "")
		shared = Env{Fixture: fx, Influx: in, Client: query.New(c.QueryAPI(""), in.Database, fx.Prefix)}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}
