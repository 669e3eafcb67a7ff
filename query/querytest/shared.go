package querytest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/query"
)

// Env is the fixture written into a database of the test influxd, with a
// query client on that database in each language.
type Env struct {
	Fixture *Fixture
	Influx  testenv.Influx
	// Client reads with InfluxQL (the default), Flux with Flux.
	Client, Flux *query.Client
}

// Clients are the env's clients by language, InfluxQL first.
func (e Env) Clients() []*query.Client { return []*query.Client{e.Client, e.Flux} }

var (
	shared     Env
	sharedOnce sync.Once
	sharedErr  error
)

// Shared writes the fixture once per test binary into a fresh database and
// returns it: the tests that use it only read.
func Shared(t testing.TB) Env {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = write(t) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// Fresh writes the fixture into a fresh database of its own; its clients
// are closed when t ends.
func Fresh(t testing.TB) Env {
	t.Helper()
	e, err := write(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Client.Close(); e.Flux.Close() })
	return e
}

func write(t testing.TB) (Env, error) {
	in := testenv.StartInflux(t)
	fx := New()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fx.Write(ctx, in.URL, in.Database); err != nil {
		return Env{}, err
	}
	e := Env{Fixture: fx, Influx: in}
	for _, l := range []query.Language{query.InfluxQL, query.Flux} {
		c, err := query.Open(query.Options{URL: in.URL, Bucket: in.Database, Prefix: fx.Prefix, Language: l, Timeout: time.Minute})
		if err != nil {
			return Env{}, err
		}
		if l == query.InfluxQL {
			e.Client = c
		} else {
			e.Flux = c
		}
	}
	return e, nil
}
