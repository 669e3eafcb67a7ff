package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	http2 "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/klauspost/compress/gzip"
)

// InfluxConfig configures the InfluxDB writer.
type InfluxConfig struct {
	URL string
	// Bucket is the 2.x bucket or the 1.8 "database[/retention-policy]".
	Bucket string
	Org    string
	// Token is the API token (2.x) or "user:password" (1.8); empty for none.
	Token            string
	CreateBucket     bool
	BatchPoints      int
	Gzip             bool
	Timeout          time.Duration
	RetryMaxInterval time.Duration
}

// Rejected is a line InfluxDB refused for what it is (a 4xx other than
// auth, not-found or too-large): retrying cannot help, so it is reported
// for the dead-letter topic instead.
type Rejected struct {
	Line []byte
	Err  error
}

// WriteObserver receives the writer's measurements; nil is allowed.
type WriteObserver interface {
	WriteDone(lines int, d time.Duration)
	WriteFailed(err error, retrying bool)
}

// Influx writes line protocol to InfluxDB 1.8 (its 2.x-compatible API) or
// 2.x through influxdb-client-go, blocking, in batches, gzip-compressed,
// retrying until the server takes the points or the context ends.
type Influx struct {
	cfg      InfluxConfig
	client   influxdb2.Client
	service  http2.Service // the client's HTTP service: its auth and errors
	writeURL string
	log      *slog.Logger
	obs      WriteObserver
	v1       bool
}

// NewInflux connects, checks the server's health and creates the bucket if
// configured to. It retries the connection until ctx ends, so tsrep can be
// started before InfluxDB.
func NewInflux(ctx context.Context, cfg InfluxConfig, log *slog.Logger, obs WriteObserver) (*Influx, error) {
	opts := influxdb2.DefaultOptions().
		SetUseGZip(cfg.Gzip).
		SetHTTPRequestTimeout(uint(max(1, cfg.Timeout/time.Second))).
		SetLogLevel(0)
	s := &Influx{cfg: cfg, log: log, obs: obs}
	s.client = influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	// Writes are posted through the client's own HTTP service (its
	// authorisation, timeouts and error type), to the URL its blocking write
	// API uses, with the body compressed here: the write API makes a new
	// default-level gzip writer per request (about 1 MB, and slow), which
	// cost more CPU than learning in the throughput benchmark.
	s.service = s.client.HTTPService()
	u, err := url.Parse(s.service.ServerAPIURL())
	if err != nil {
		return nil, fmt.Errorf("influx.url: %w", err)
	}
	u, _ = u.Parse("write")
	u.RawQuery = url.Values{"org": {cfg.Org}, "bucket": {cfg.Bucket}, "precision": {"ns"}}.Encode()
	s.writeURL = u.String()

	var version string
	err = s.retry(ctx, "connect to InfluxDB at "+RedactURL(cfg.URL), func() error {
		h, err := s.client.Health(ctx)
		if err != nil {
			return err
		}
		if h.Version != nil {
			version = *h.Version
		}
		return nil
	})
	if err != nil {
		s.client.Close()
		return nil, redactErr(err, cfg.URL)
	}
	// Builds from source report version "unknown"; 2.x needs an org, 1.x
	// does not have one.
	s.v1 = strings.HasPrefix(version, "1.") || (!strings.HasPrefix(version, "2.") && cfg.Org == "")
	log.Info("influxdb connected", "url", RedactURL(cfg.URL), "version", version, "bucket", cfg.Bucket)
	if cfg.CreateBucket {
		if err := s.ensureBucket(ctx); err != nil {
			s.Close()
			return nil, redactErr(err, cfg.URL)
		}
	}
	return s, nil
}

// Client is the underlying client, for queries.
func (s *Influx) Client() influxdb2.Client { return s.client }

// Close releases the client's connections.
func (s *Influx) Close() error {
	s.client.Close()
	return nil
}

func (s *Influx) ensureBucket(ctx context.Context) error {
	what := "create bucket " + s.cfg.Bucket
	if s.v1 {
		db, _, _ := strings.Cut(s.cfg.Bucket, "/")
		what = "create database " + db
	}
	return s.retry(ctx, what, func() error { return s.createBucket(ctx) })
}

// createBucket creates the database (1.x) or bucket (2.x), once; it is a
// no-op when it exists.
func (s *Influx) createBucket(ctx context.Context) error {
	if s.v1 {
		db, _, _ := strings.Cut(s.cfg.Bucket, "/")
		return createDatabaseV1(ctx, s.cfg.URL, s.cfg.Token, db)
	}
	b := s.client.BucketsAPI()
	if _, err := b.FindBucketByName(ctx, s.cfg.Bucket); err == nil {
		return nil
	}
	org, err := s.client.OrganizationsAPI().FindOrganizationByName(ctx, s.cfg.Org)
	if err != nil {
		return fmt.Errorf("find organisation %q (influx.org): %w", s.cfg.Org, err)
	}
	_, err = b.CreateBucketWithName(ctx, org, s.cfg.Bucket)
	return err
}

// DropBucket deletes the database (1.8) or bucket (2.x) and everything in
// it, if it exists (for the demo, benchmarks and tests, which must start
// from an empty one).
func (s *Influx) DropBucket(ctx context.Context) error {
	if s.v1 {
		db, _, _ := strings.Cut(s.cfg.Bucket, "/")
		if err := influxQLV1(ctx, s.cfg.URL, s.cfg.Token, fmt.Sprintf("DROP DATABASE %q", db)); err != nil {
			return err
		}
		// 1.8 can still list (and take writes for) a dropped database for
		// a moment; return once it is gone, so that a writer created next
		// does not create it again before the drop lands.
		for {
			dbs, err := databasesV1(ctx, s.cfg.URL, s.cfg.Token)
			if err != nil || !slices.Contains(dbs, db) {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	b := s.client.BucketsAPI()
	bucket, err := b.FindBucketByName(ctx, s.cfg.Bucket)
	var herr *http2.Error
	if errors.As(err, &herr) && herr.StatusCode == http.StatusNotFound || err != nil && strings.Contains(err.Error(), "not found") {
		return nil // nothing to drop
	}
	if err != nil {
		return err
	}
	return b.DeleteBucket(ctx, bucket)
}

// createDatabaseV1 runs CREATE DATABASE on InfluxDB 1.x, which is a no-op
// when the database exists.
func createDatabaseV1(ctx context.Context, base, token, db string) error {
	return influxQLV1(ctx, base, token, fmt.Sprintf("CREATE DATABASE %q", db))
}

// databasesV1 lists the databases of a 1.x server.
func databasesV1(ctx context.Context, base, token string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/query?q=SHOW+DATABASES", nil)
	if err != nil {
		return nil, err
	}
	if u, p, ok := strings.Cut(token, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []struct{ Values [][]string }
			Error  string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("SHOW DATABASES: %s: %w", resp.Status, err)
	}
	var dbs []string
	for _, res := range r.Results {
		if res.Error != "" {
			return nil, fmt.Errorf("SHOW DATABASES: %s", res.Error)
		}
		for _, se := range res.Series {
			for _, v := range se.Values {
				if len(v) > 0 {
					dbs = append(dbs, v[0])
				}
			}
		}
	}
	return dbs, nil
}

// influxQLV1 runs an InfluxQL statement that returns no rows on 1.x.
func influxQLV1(ctx context.Context, base, token, q string) error {
	form := url.Values{"q": {q}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if u, p, ok := strings.Cut(token, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &http2.Error{StatusCode: resp.StatusCode, Message: q + ": " + resp.Status}
	}
	// A statement that fails still answers 200, with the error inside.
	var r struct{ Results []struct{ Error string } }
	if err := json.NewDecoder(resp.Body).Decode(&r); err == nil {
		for _, res := range r.Results {
			if res.Error != "" {
				return fmt.Errorf("%s: %s", q, res.Error)
			}
		}
	}
	return nil
}

// Write stores lines (newline-terminated line protocol) in requests of at
// most BatchPoints lines. It returns once every line is written or
// rejected; the error is non-nil only when ctx ends first. It is safe for
// concurrent use (each partition writes its own results).
func (s *Influx) Write(ctx context.Context, lines []byte) ([]Rejected, error) {
	starts := lineStarts(nil, lines)
	var rejected []Rejected
	for i := 0; i < len(starts); i += s.cfg.BatchPoints {
		j := min(i+s.cfg.BatchPoints, len(starts))
		chunk := lines[starts[i]:end(starts, j, len(lines))]
		rj, err := s.writeChunk(ctx, chunk, j-i)
		rejected = append(rejected, rj...)
		if err != nil {
			return rejected, err
		}
	}
	return rejected, nil
}

func end(starts []int, j, n int) int {
	if j < len(starts) {
		return starts[j]
	}
	return n
}

func lineStarts(dst []int, b []byte) []int {
	for i := 0; i < len(b); {
		dst = append(dst, i)
		k := bytes.IndexByte(b[i:], '\n')
		if k < 0 {
			break
		}
		i += k + 1
	}
	return dst
}

// writeChunk writes n lines, retrying what can be retried; a chunk the
// server rejects as bad input is split in halves until the bad lines are
// isolated, so one bad point does not take its neighbours with it.
func (s *Influx) writeChunk(ctx context.Context, chunk []byte, n int) ([]Rejected, error) {
	var rejectedErr error
	err := s.retry(ctx, "write to InfluxDB", func() error {
		t0 := time.Now()
		err := s.post(ctx, chunk)
		if err == nil {
			if s.obs != nil {
				s.obs.WriteDone(n, time.Since(t0))
			}
			return nil
		}
		var he *http2.Error
		if errors.As(err, &he) {
			switch {
			case he.StatusCode == http.StatusNotFound && s.cfg.CreateBucket:
				// The database or bucket went away (dropped while we
				// run): create it again, then retry the write.
				if cerr := s.createBucket(ctx); cerr != nil {
					return fmt.Errorf("%w; re-creating it (influx.create_bucket) failed: %w", err, cerr)
				}
				s.log.Warn("the bucket/database was missing; re-created it (influx.create_bucket = true)", "bucket", s.cfg.Bucket)
				return err
			case he.StatusCode == http.StatusRequestEntityTooLarge && n > 1:
				rejectedErr = errSplit
				return backoff.Permanent(err)
			case he.StatusCode >= 400 && he.StatusCode < 500 && !retryable4xx(he.StatusCode):
				rejectedErr = err
				return backoff.Permanent(err)
			}
		}
		return err
	})
	if err == nil {
		return nil, nil
	}
	if rejectedErr == nil {
		return nil, redactErr(err, s.cfg.URL) // ctx ended
	}
	if n == 1 {
		if rejectedErr == errSplit {
			rejectedErr = fmt.Errorf("line of %d bytes is too large for the server", len(chunk))
		}
		return []Rejected{{Line: bytes.TrimRight(chunk, "\n"), Err: rejectedErr}}, nil
	}
	// Bisect. Lines already written by a partial write are written again:
	// points are idempotent, so that only costs a request.
	starts := lineStarts(nil, chunk)
	mid := len(starts) / 2
	left, err := s.writeChunk(ctx, chunk[:starts[mid]], mid)
	if err != nil {
		return left, err
	}
	right, err := s.writeChunk(ctx, chunk[starts[mid]:], len(starts)-mid)
	return append(left, right...), err
}

var errSplit = errors.New("request too large; splitting")

// gzipMin is the smallest request body worth compressing.
const gzipMin = 16 << 10

// gzipPool holds fast gzip writers and their buffers.
var gzipPool = sync.Pool{New: func() any {
	z, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return &gzipBuf{z: z}
}}

type gzipBuf struct {
	b bytes.Buffer
	z *gzip.Writer
}

// post sends one write request; the error is the client's *http2.Error.
func (s *Influx) post(ctx context.Context, body []byte) error {
	var rd io.Reader = bytes.NewReader(body)
	gz := s.cfg.Gzip && len(body) >= gzipMin
	if gz {
		g := gzipPool.Get().(*gzipBuf)
		defer gzipPool.Put(g)
		g.b.Reset()
		g.z.Reset(&g.b)
		_, _ = g.z.Write(body)
		if err := g.z.Close(); err != nil {
			return err
		}
		rd = bytes.NewReader(g.b.Bytes())
	}
	perr := s.service.DoPostRequest(ctx, s.writeURL, rd, func(req *http.Request) {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
	}, func(resp *http.Response) error {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	if perr != nil { // a typed nil must not become a non-nil error
		return perr
	}
	return nil
}

// retryable4xx are client errors that a fix on the server side (a token, a
// database, a rate limit) cures without changing the data.
func retryable4xx(code int) bool {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// retry runs op with exponential backoff until it succeeds, returns a
// permanent error, or ctx ends. Failures are logged (first, then every
// doubling) and reported to the observer.
func (s *Influx) retry(ctx context.Context, what string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = s.cfg.RetryMaxInterval
	b.MaxElapsedTime = 0 // never give up: the pipeline waits, it does not drop
	attempt := 0
	return backoff.RetryNotify(op, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		attempt++
		if s.obs != nil {
			s.obs.WriteFailed(err, true)
		}
		if attempt&(attempt-1) == 0 { // 1, 2, 4, 8...: loud but not a flood
			s.log.Warn("retrying", "op", what, "attempt", attempt, "next_in", next.Round(time.Millisecond), "err", s.explain(err))
		}
	})
}

// explain adds what to do to the errors an operator can fix, and takes
// any password out of URLs in them.
func (s *Influx) explain(err error) error {
	err = redactErr(err, s.cfg.URL)
	var he *http2.Error
	if errors.As(err, &he) {
		switch {
		case he.StatusCode == http.StatusUnauthorized, he.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w: InfluxDB refused the credentials; check the environment variable named by influx.token_env (a 2.x token, or user:password on 1.8)", err)
		case he.StatusCode == http.StatusNotFound && s.cfg.CreateBucket:
			return fmt.Errorf("%w: no such bucket/database; re-creating it before the next attempt (influx.create_bucket = true)", err)
		case he.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: no such bucket/database; create it or set influx.create_bucket = true", err)
		case strings.Contains(he.Message, "retention policy not found"):
			return fmt.Errorf("%w: the retention policy of influx.bucket (database/retention-policy) does not exist; create it "+
				"(CREATE RETENTION POLICY ... ON <database>) or name an existing one: influx.create_bucket creates only the database", err)
		}
	}
	return err
}

// RedactURL returns u with the password of its userinfo, if any, replaced
// by "xxxxx" (url.URL.Redacted), for logs and messages. A URL that does
// not parse is returned without anything between "://" and the first "@".
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		if i := strings.Index(u, "://"); i >= 0 {
			if j := strings.LastIndex(u, "@"); j > i {
				return u[:i+3] + "xxxxx" + u[j:]
			}
		}
		return u
	}
	return p.Redacted()
}

// redactErr takes the password of url raw out of err's text, if it is in
// it (the HTTP client strips it from its own errors; this is for the rest).
func redactErr(err error, raw string) error {
	p, perr := url.Parse(raw)
	if err == nil || perr != nil || p.User == nil {
		return err
	}
	pass, ok := p.User.Password()
	if !ok || pass == "" || !strings.Contains(err.Error(), pass) {
		return err
	}
	return redactedError{msg: strings.ReplaceAll(err.Error(), pass, "xxxxx"), err: err}
}

// redactedError is an error whose text had a secret taken out; it still
// unwraps to the original for errors.As.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
