// Package api serves what tsrep wrote to InfluxDB as JSON over HTTP, for
// services that want "the series similar to X" without writing InfluxQL
// or Flux:
//
//	GET /api/v1/similar?series=S[&k=10][&version=V][&at=T][&model=M]
//	GET /api/v1/embedding?series=S[&at=T][&version=V][&model=M]
//	GET /api/v1/forecast?series=S[&from=T1][&to=T2][&model=M]
//	GET /api/v1/anomaly?series=S[&from=T1][&to=T2][&min_score=X][&model=M]
//	GET /api/v1/series[?measurement=M][&field=F][&tag=K:V...][&limit=N][&model=M]
//
// Every read goes through package query, which escapes every name and
// value; the parameters are checked first, and a request that is not
// valid gets 400 with a JSON body {"error": "...", "status": 400}. A
// series with no data gets 404 (embedding, similar) or an empty list; a
// failed query 502; a query that ran out of time 504.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/query"
)

// Options configures the API. The zero value is usable but for Model.
type Options struct {
	// Model is the model tag read when a request names none (?model=):
	// the configuration's model.name.
	Model string
	// Log receives a line per failed query (nil: none).
	Log *slog.Logger
	// Now is the clock relative times (now, -24h) are read against
	// (nil: time.Now).
	Now func() time.Time
	// Timeout bounds the queries of one request (default 30s).
	Timeout time.Duration
	// MaxK caps k of /similar (default 1000).
	MaxK int
	// MaxSeries caps the series /series lists (default 10000; a request's
	// limit may be lower).
	MaxSeries int
	// MaxConcurrent bounds the requests that query InfluxDB at once; the
	// others wait, within their timeout (default 8).
	MaxConcurrent int
}

// Prefix is the path every endpoint is under.
const Prefix = "/api/v1/"

// maxParam bounds the length of a parameter's value: a series key is at
// most ingest.MaxSeriesKeyBytes.
const maxParam = ingest.MaxSeriesKeyBytes

type api struct {
	q   *query.Client
	o   Options
	sem chan struct{}
}

// Handler returns the API over q. Mount it at "/" or at Prefix; it
// answers paths under Prefix, and 404 with a JSON error elsewhere.
func Handler(q *query.Client, o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxK <= 0 {
		o.MaxK = 1000
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 10000
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 8
	}
	a := &api{q: q, o: o, sem: make(chan struct{}, o.MaxConcurrent)}
	routes := map[string]endpoint{
		"similar":   {a.similar, []string{"series", "k", "version", "at", "model"}},
		"embedding": {a.embedding, []string{"series", "at", "version", "model"}},
		"forecast":  {a.forecast, []string{"series", "from", "to", "model"}},
		"anomaly":   {a.anomaly, []string{"series", "from", "to", "min_score", "model"}},
		"series":    {a.series, []string{"measurement", "field", "tag", "limit", "model"}},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		ep, found := routes[name]
		if !ok || !found {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s: the API serves %ssimilar, embedding, forecast, anomaly and series", r.URL.Path, Prefix))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s: the API is read-only, use GET", r.Method))
			return
		}
		p, err := parseParams(r.URL.RawQuery, ep.params)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), o.Timeout)
		defer cancel()
		select {
		case a.sem <- struct{}{}:
			defer func() { <-a.sem }()
		case <-ctx.Done():
			writeError(w, http.StatusServiceUnavailable, "too many requests at once: try again")
			return
		}
		v, err := ep.fn(ctx, p)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

type endpoint struct {
	fn     func(ctx context.Context, p params) (any, error)
	params []string
}

// badRequest is an error in the request's parameters.
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func bad(format string, a ...any) error { return badRequest{fmt.Sprintf(format, a...)} }

// fail answers an error: 400 for the request's own, 404 for no data,
// 504 for a timeout, else 502 (the query failed).
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br badRequest
	switch {
	case errors.As(err, &br), errors.Is(err, query.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, query.ErrNoData):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		a.o.Log.Warn("api query timed out", "path", r.URL.Path, "timeout", a.o.Timeout, "err", err)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("the query took longer than %s", a.o.Timeout))
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request cancelled") // nginx's "client closed request"; nobody reads it
	default:
		a.o.Log.Warn("api query failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusBadGateway, "query InfluxDB: "+err.Error())
	}
}

// params are a request's parameters, each allowed one once but tag.
type params struct {
	v   url.Values
	now time.Time
}

func parseParams(raw string, allowed []string) (params, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return params{}, bad("query string: %v (percent-encode the parameters: curl -G --data-urlencode 'series=...')", err)
	}
	for k, vs := range v {
		if !slices.Contains(allowed, k) {
			return params{}, bad("unknown parameter %q: this endpoint takes %s", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 && k != "tag" {
			return params{}, bad("parameter %q given %d times: give it once", k, len(vs))
		}
		for _, s := range vs {
			if len(s) > maxParam {
				return params{}, bad("parameter %q is %d bytes long: at most %d", k, len(s), maxParam)
			}
		}
	}
	return params{v: v}, nil
}

func (p params) has(k string) bool { return p.v.Has(k) }

func (p params) get(k string) string { return p.v.Get(k) }

// series is the required series key, canonical.
func (p params) series() (string, error) {
	if !p.has("series") || p.get("series") == "" {
		return "", bad("parameter series is required: a series key as tsrep writes it, measurement,tag=value#field, e.g. series=etth1,source%%3Ddemo%%23OT")
	}
	return query.CanonicalSeries(p.get("series"))
}

func (a *api) model(p params) (string, error) {
	if p.has("model") {
		if p.get("model") == "" {
			return "", bad("parameter model is empty: leave it out for the default (%q)", a.o.Model)
		}
		return p.get("model"), nil
	}
	if a.o.Model == "" {
		return "", bad("parameter model is required: the server has no default model")
	}
	return a.o.Model, nil
}

func (a *api) time(p params, k string) (time.Time, error) {
	if !p.has(k) {
		return time.Time{}, nil
	}
	t, err := query.ParseTime(p.get(k), a.o.Now())
	if err != nil || (p.get(k) == "" && p.has(k)) {
		return time.Time{}, bad("parameter %s: %v", k, orEmpty(err))
	}
	return t, nil
}

func orEmpty(err error) any {
	if err == nil {
		return "empty: leave it out instead"
	}
	return err
}

// timeRange is [from, to).
func (a *api) timeRange(p params) (from, to time.Time, err error) {
	if from, err = a.time(p, "from"); err != nil {
		return
	}
	if to, err = a.time(p, "to"); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		err = bad("to %s is not after from %s", jsonTime(to), jsonTime(from))
	}
	return
}

func (p params) version() (int64, error) {
	if !p.has("version") {
		return query.NewestVersion, nil
	}
	n, err := strconv.ParseInt(p.get("version"), 10, 64)
	if err != nil || n == query.NewestVersion {
		return 0, bad("parameter version %q: an encoder version is an integer (the version field of /embedding)", p.get("version"))
	}
	return n, nil
}

// intParam reads an integer parameter in [lo, hi], def if absent.
func (p params) intParam(k string, def, lo, hi int) (int, error) {
	if !p.has(k) {
		return def, nil
	}
	n, err := strconv.Atoi(p.get(k))
	if err != nil || n < lo || n > hi {
		return 0, bad("parameter %s %q: an integer from %d to %d", k, p.get(k), lo, hi)
	}
	return n, nil
}

type matchJSON struct {
	Rank    int       `json:"rank"`
	Series  string    `json:"series"`
	Score   jsonFloat `json:"score"`  // what the matches are ranked by (query.Rank)
	Cosine  jsonFloat `json:"cosine"` // the plain cosine similarity
	Time    string    `json:"time"`
	Version int64     `json:"version"`
}

type similarJSON struct {
	Series string `json:"series"`
	Model  string `json:"model"`
	// Version is the encoder version compared within; VersionFrom says
	// how it was chosen: "request" (?version=) or "newest" (that of the
	// series' newest embedding).
	Version     int64       `json:"version"`
	VersionFrom string      `json:"version_from"`
	Time        string      `json:"time"` // of the series' embedding compared
	K           int         `json:"k"`
	Matches     []matchJSON `json:"matches"`
}

// seriesModel reads the series and model every per-series endpoint takes.
func (a *api) seriesModel(p params) (series, model string, err error) {
	if series, err = p.series(); err != nil {
		return "", "", err
	}
	if model, err = a.model(p); err != nil {
		return "", "", err
	}
	return series, model, nil
}

// seriesRange is seriesModel and the from/to range of the range endpoints.
func (a *api) seriesRange(p params) (series, model string, from, to time.Time, err error) {
	if series, model, err = a.seriesModel(p); err != nil {
		return
	}
	from, to, err = a.timeRange(p)
	return
}

func (a *api) similar(ctx context.Context, p params) (any, error) {
	series, model, err := a.seriesModel(p)
	if err != nil {
		return nil, err
	}
	k, err := p.intParam("k", 10, 1, a.o.MaxK)
	if err != nil {
		return nil, err
	}
	v, err := p.version()
	if err != nil {
		return nil, err
	}
	at, err := a.time(p, "at")
	if err != nil {
		return nil, err
	}
	q, ms, err := a.q.SimilarOfVersion(ctx, series, at, k, model, v)
	if err != nil {
		return nil, err
	}
	out := similarJSON{Series: series, Model: model, Version: q.Version, VersionFrom: "newest", Time: jsonTime(q.Time), K: k, Matches: []matchJSON{}}
	if v != query.NewestVersion {
		out.VersionFrom = "request"
	}
	for i, m := range ms {
		out.Matches = append(out.Matches, matchJSON{Rank: i + 1, Series: m.Series, Score: jsonFloat(m.Score), Cosine: jsonFloat(m.Cosine), Time: jsonTime(m.Time), Version: m.Version})
	}
	return out, nil
}

type embeddingJSON struct {
	Series    string      `json:"series"`
	Model     string      `json:"model"`
	Version   int64       `json:"version"`
	Time      string      `json:"time"`
	Embedding []jsonFloat `json:"embedding"`
}

func (a *api) embedding(ctx context.Context, p params) (any, error) {
	series, model, err := a.seriesModel(p)
	if err != nil {
		return nil, err
	}
	v, err := p.version()
	if err != nil {
		return nil, err
	}
	at, err := a.time(p, "at")
	if err != nil {
		return nil, err
	}
	e, err := a.q.EmbeddingOfVersion(ctx, series, at, model, v)
	if err != nil {
		return nil, err
	}
	out := embeddingJSON{Series: e.Series, Model: model, Version: e.Version, Time: jsonTime(e.Time), Embedding: make([]jsonFloat, len(e.Vector))}
	for i, x := range e.Vector {
		out.Embedding[i] = jsonFloat(x)
	}
	return out, nil
}

type forecastPointJSON struct {
	Time              string    `json:"time"`
	Predicted         jsonFloat `json:"predicted"`
	Actual            jsonFloat `json:"actual"`
	AbsError          jsonFloat `json:"abs_error"`
	LastValue         jsonFloat `json:"last_value"`
	LastValueAbsError jsonFloat `json:"last_value_abs_error"`
}

type forecastJSON struct {
	Series string              `json:"series"`
	Model  string              `json:"model"`
	From   string              `json:"from,omitempty"`
	To     string              `json:"to,omitempty"`
	Points []forecastPointJSON `json:"points"`
}

func (a *api) forecast(ctx context.Context, p params) (any, error) {
	series, model, from, to, err := a.seriesRange(p)
	if err != nil {
		return nil, err
	}
	pts, err := a.q.Forecasts(ctx, series, from, to, model)
	if err != nil {
		return nil, err
	}
	out := forecastJSON{Series: series, Model: model, From: jsonTime(from), To: jsonTime(to), Points: make([]forecastPointJSON, len(pts))}
	for i, x := range pts {
		out.Points[i] = forecastPointJSON{Time: jsonTime(x.Time), Predicted: jsonFloat(x.Predicted), Actual: jsonFloat(x.Actual),
			AbsError: jsonFloat(x.AbsError), LastValue: jsonFloat(x.LastValue), LastValueAbsError: jsonFloat(x.LastValueAbsError)}
	}
	return out, nil
}

type anomalyPointJSON struct {
	Time     string    `json:"time"`
	Score    jsonFloat `json:"score"`
	Surprise jsonFloat `json:"surprise"`
	Z        jsonFloat `json:"z"`
	Novelty  jsonFloat `json:"novelty"`
}

type anomalyJSON struct {
	Series   string             `json:"series"`
	Model    string             `json:"model"`
	From     string             `json:"from,omitempty"`
	To       string             `json:"to,omitempty"`
	MinScore float64            `json:"min_score"`
	Points   []anomalyPointJSON `json:"points"`
}

func (a *api) anomaly(ctx context.Context, p params) (any, error) {
	series, model, from, to, err := a.seriesRange(p)
	if err != nil {
		return nil, err
	}
	minScore := 0.0
	if p.has("min_score") {
		minScore, err = strconv.ParseFloat(p.get("min_score"), 64)
		if err != nil || !(minScore >= 0 && minScore <= 1) {
			return nil, bad("parameter min_score %q: a number from 0 to 1", p.get("min_score"))
		}
	}
	pts, err := a.q.Anomalies(ctx, series, from, to, model, minScore)
	if err != nil {
		return nil, err
	}
	out := anomalyJSON{Series: series, Model: model, From: jsonTime(from), To: jsonTime(to), MinScore: minScore, Points: make([]anomalyPointJSON, len(pts))}
	for i, x := range pts {
		out.Points[i] = anomalyPointJSON{Time: jsonTime(x.Time), Score: jsonFloat(x.Score), Surprise: jsonFloat(x.Surprise), Z: jsonFloat(x.Z), Novelty: jsonFloat(x.Novelty)}
	}
	return out, nil
}

type seriesInfoJSON struct {
	Series string `json:"series"`
	// Latest is the time of the newest point of each output the series
	// has: forecast, embedding, anomaly, imputed.
	Latest map[string]string `json:"latest"`
}

type seriesJSON struct {
	Model     string           `json:"model"`
	Series    []seriesInfoJSON `json:"series"`
	Truncated bool             `json:"truncated"`
}

func (a *api) series(ctx context.Context, p params) (any, error) {
	model, err := a.model(p)
	if err != nil {
		return nil, err
	}
	limit, err := p.intParam("limit", a.o.MaxSeries, 1, a.o.MaxSeries)
	if err != nil {
		return nil, err
	}
	f := query.SeriesFilter{Measurement: p.get("measurement"), Field: p.get("field")}
	for _, k := range []string{"measurement", "field"} {
		if p.has(k) && p.get(k) == "" {
			return nil, bad("parameter %s is empty: leave it out for every %s", k, k)
		}
	}
	for _, t := range p.v["tag"] {
		k, v, ok := strings.Cut(t, ":")
		if !ok || k == "" || v == "" {
			return nil, bad("parameter tag %q: write KEY:VALUE (split at the first ':'), e.g. tag=host:a", t)
		}
		f.Tags = append(f.Tags, ingest.KV{Key: k, Value: v})
	}
	list, err := a.q.ListSeries(ctx, model, f)
	if err != nil {
		return nil, err
	}
	out := seriesJSON{Model: model, Series: []seriesInfoJSON{}}
	if len(list) > limit {
		list, out.Truncated = list[:limit], true
	}
	for _, s := range list {
		info := seriesInfoJSON{Series: s.Series, Latest: map[string]string{}}
		for k, t := range s.Latest {
			info.Latest[k] = jsonTime(t)
		}
		out.Series = append(out.Series, info)
	}
	return out, nil
}

// jsonTime is RFC 3339 with nanoseconds, UTC; "" for the zero time.
func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// jsonFloat writes NaN (a value not written) and infinities as null.
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

type errorJSON struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorJSON{Error: msg, Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away
}
