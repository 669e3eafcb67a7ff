package sinks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tsrep/tsrep/internal/testenv"
	"github.com/tsrep/tsrep/sinks"
)

// logBuffer is a concurrency-safe log destination.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// withPassword puts user:password into an http:// URL.
func withPassword(u, user, pass string) string {
	return strings.Replace(u, "http://", "http://"+user+":"+pass+"@", 1)
}

// TestInfluxRedactsURLPassword: a password in influx.url appears neither in
// the "connected" line, nor in the retry lines of a server that is not
// there, nor in the error returned when giving up.
func TestInfluxRedactsURLPassword(t *testing.T) {
	const secret = "s3cr3t-in-url"
	in := testenv.StartInflux(t)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := testenv.Context(t, time.Minute)
	s, err := sinks.NewInflux(ctx, sinks.InfluxConfig{
		URL: withPassword(in.URL, "alice", secret), Bucket: in.Database, CreateBucket: true, BatchPoints: 10,
		Timeout: 5 * time.Second, RetryMaxInterval: 100 * time.Millisecond,
	}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	dead, _ := testenv.FreePort()
	cctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, err = sinks.NewInflux(cctx, sinks.InfluxConfig{
		URL: withPassword(fmt.Sprintf("http://127.0.0.1:%d", dead), "alice", secret), Bucket: "x", BatchPoints: 10,
		Timeout: time.Second, RetryMaxInterval: 100 * time.Millisecond,
	}, log, nil)
	if err == nil {
		t.Fatal("connected to a port nobody listens on")
	}
	out := logs.String()
	if !strings.Contains(out, "influxdb connected") || !strings.Contains(out, "retrying") {
		t.Fatalf("expected a connected line and retry lines:\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(err.Error(), secret) {
		t.Fatalf("the URL's password is in the log or the error:\n%s\nerr: %v", out, err)
	}
	if !strings.Contains(out, "alice:xxxxx@") {
		t.Errorf("the log does not name the URL with its password redacted:\n%s", out)
	}
	for _, c := range []struct{ in, want string }{
		{"http://u:p@h:1/x", "http://u:xxxxx@h:1/x"},
		{"http://h:1", "http://h:1"},
		{"http://u@h", "http://u@h"},
		{"http://u:p%zz@h", "http://xxxxx@h"}, // does not parse
	} {
		if got := sinks.RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestInfluxRecreatesDroppedDatabase: with influx.create_bucket = true, a
// database dropped while tsrep runs is created again and the write goes
// through (it used to be retried forever, with a message suggesting the
// setting already set). Without the setting, the message says to set it.
func TestInfluxRecreatesDroppedDatabase(t *testing.T) {
	in := testenv.StartInflux(t)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := testenv.Context(t, time.Minute)
	cfg := sinks.InfluxConfig{URL: in.URL, Bucket: in.Database, CreateBucket: true, BatchPoints: 100,
		Timeout: 5 * time.Second, RetryMaxInterval: 200 * time.Millisecond}
	s, err := sinks.NewInflux(ctx, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(ctx, []byte("m v=1 1\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.DropBucket(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	rj, err := s.Write(wctx, []byte("m v=2 2\nm v=3 3\n"))
	if err != nil || len(rj) != 0 {
		t.Fatalf("write after the drop: rejected %v, err %v\n%s", rj, err, logs.String())
	}
	if got := count(ctx, t, in.URL, in.Database); len(got) != 2 || got[2] != 2 || got[3] != 3 {
		t.Fatalf("points after the re-creation: %v", got)
	}
	out := logs.String()
	if !strings.Contains(out, "re-created") || strings.Contains(out, "set influx.create_bucket = true") {
		t.Fatalf("log:\n%s", out)
	}

	// create_bucket = false: retried with the advice to set it.
	logs = logBuffer{}
	cfg.CreateBucket = false
	cfg.Bucket = in.Database + "_missing"
	s2, err := sinks.NewInflux(ctx, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	wctx2, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if _, err := s2.Write(wctx2, []byte("m v=1 1\n")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write to a missing database without create_bucket: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, "create it or set influx.create_bucket = true") {
		t.Fatalf("log:\n%s", out)
	}
}
