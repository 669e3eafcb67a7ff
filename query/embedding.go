package query

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tsrep/tsrep/ingest"
	"github.com/tsrep/tsrep/sinks"
)

// Embedding is one series' embedding at one time.
type Embedding struct {
	Series string    // canonical series key, measurement,tags#field
	Time   time.Time // window end the embedding describes
	// Version is the encoder version the embedding was made with (0 for
	// embeddings written before versions were recorded). Embeddings are
	// comparable only within one version.
	Version int64
	Vector  []float64 // e0..e{D-1}
}

// Measurement is the input measurement of the embedding's series.
func (e Embedding) Measurement() string {
	id, err := ingest.ParseSeriesKey(e.Series)
	if err != nil {
		return ""
	}
	return id.Measurement
}

// Match is a series found by Similar.
type Match struct {
	Series string // canonical series key
	// Score is what Similar ranks by: the cosine similarity of the two
	// embeddings with each dimension scaled by the compared population
	// (ScaledCosine, Scales), in [-1, 1].
	Score float64
	// Cosine is the plain cosine similarity of the two embeddings.
	Cosine float64
	Time   time.Time // time of the matched series' embedding
	// Version is the encoder version of both embeddings compared.
	Version int64
}

// Embedding returns the latest embedding of series at or before at (zero:
// the latest there is) written by model, whatever its encoder version. It
// wraps ErrNoData if there is none.
func (c *Client) Embedding(ctx context.Context, series string, at time.Time, model string) (Embedding, error) {
	return c.EmbeddingOfVersion(ctx, series, at, model, NewestVersion)
}

// EmbeddingOfVersion returns the latest embedding of series at or before
// at (zero: the latest) written by model with encoder version version
// (NewestVersion: whatever its version). It wraps ErrNoData if there is
// none.
func (c *Client) EmbeddingOfVersion(ctx context.Context, series string, at time.Time, model string, version int64) (Embedding, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return Embedding{}, err
	}
	by, err := c.latestEmbeddings(ctx, t.tags, at, version)
	if err != nil {
		return Embedding{}, err
	}
	e, ok := by[t.key]
	if !ok {
		return Embedding{}, fmt.Errorf("embedding of series %q with model %q%s%s: %w (check the series key and the model; learners without an encoder write none)",
			t.key, model, versionText(version), atText(at), ErrNoData)
	}
	return e, nil
}

func atText(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return " at or before " + at.UTC().Format(time.RFC3339Nano)
}

func versionText(v int64) string {
	if v == NewestVersion {
		return ""
	}
	return " of encoder version " + strconv.FormatInt(v, 10)
}

// LatestEmbeddings returns every series' latest embedding at or before at
// (zero: the latest) written by model, whatever its version, sorted by
// series. Series whose latest vector is incomplete (a missing e<i>) are
// left out.
func (c *Client) LatestEmbeddings(ctx context.Context, at time.Time, model string) ([]Embedding, error) {
	return c.LatestEmbeddingsOfVersion(ctx, at, model, NewestVersion)
}

// LatestEmbeddingsOfVersion returns, for every series, its latest
// embedding at or before at (zero: the latest) written by model with
// encoder version version (NewestVersion: whatever its version), sorted by
// series.
func (c *Client) LatestEmbeddingsOfVersion(ctx context.Context, at time.Time, model string, version int64) ([]Embedding, error) {
	if err := checkModel(model); err != nil {
		return nil, err
	}
	by, err := c.latestEmbeddings(ctx, modelTag(model), at, version)
	if err != nil {
		return nil, err
	}
	out := make([]Embedding, 0, len(by))
	for _, e := range by {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out, nil
}

// latestEmbeddings returns, per series whose output tags include tags,
// its newest complete embedding at or before at of the version
// (NewestVersion: any). It reads every series' newest embedding first;
// only if one of them has a version other than the one asked for does it
// look further back (versionEmbeddingText).
func (c *Client) latestEmbeddings(ctx context.Context, tags []ingest.KV, at time.Time, version int64) (map[string]Embedding, error) {
	meas := c.meas(sinks.MeasEmbedding)
	newest := map[string]Embedding{}
	versioned := map[string]bool{} // newest has a version field
	err := c.run(ctx, newestEmbeddingText(c.bucket, meas, tags, at), func(_ int, r row) error {
		key, err := seriesKey(r.tags)
		if err != nil {
			return err
		}
		if e, ok := embeddingOf(key, r); ok {
			if prev, seen := newest[key]; !seen || e.Time.After(prev.Time) {
				newest[key] = e
				versioned[key] = r.vals["version"] != nil
			}
		}
		return nil
	})
	if err != nil || version == NewestVersion {
		return newest, err
	}
	by := map[string]Embedding{}
	var back []string // series that may have an older embedding of the version
	for key, e := range newest {
		switch {
		case e.Version == version:
			by[key] = e
		case versioned[key]:
			// Without a version field, the newest is older than every
			// embedding with one: then the series has none of version.
			back = append(back, key)
		}
	}
	if len(back) == 0 {
		return by, nil
	}
	keep := func(e Embedding) {
		if e.Version != version {
			return
		}
		if prev, seen := by[e.Series]; !seen || e.Time.After(prev.Time) {
			by[e.Series] = e
		}
	}
	firstVersioned := map[string]time.Time{}
	err = c.run(ctx, versionEmbeddingText(c.bucket, meas, tags, at, version), func(stmt int, r row) error {
		key, err := seriesKey(r.tags)
		if err != nil {
			return err
		}
		if stmt == 1 { // InfluxQL, version 0: the first row with a version
			firstVersioned[key] = r.time
			return nil
		}
		if e, ok := embeddingOf(key, r); ok {
			keep(e)
		}
		return nil
	})
	if err != nil || c.lang != InfluxQL || version != 0 {
		return by, err
	}
	// InfluxQL, version 0: the series that have no embedding with version
	// = 0 may have some without a version, before their first with one.
	var follow []string
	sort.Strings(back)
	for _, key := range back {
		t, ok := firstVersioned[key]
		if _, found := by[key]; found || !ok {
			continue
		}
		id, err := ingest.ParseSeriesKey(key)
		if err != nil {
			return nil, err
		}
		follow = append(follow, embeddingBeforeIQL(meas, sinks.OutputTags(id, tagValue(tags, "model")), t))
	}
	const perRequest = 200
	for len(follow) > 0 {
		n := min(perRequest, len(follow))
		err := c.run(ctx, text{iql: follow[:n]}, func(_ int, r row) error {
			key, err := seriesKey(r.tags)
			if err != nil {
				return err
			}
			if e, ok := embeddingOf(key, r); ok && r.vals["version"] == nil {
				keep(e)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		follow = follow[n:]
	}
	return by, nil
}

func tagValue(tags []ingest.KV, k string) string {
	for _, t := range tags {
		if t.Key == k {
			return t.Value
		}
	}
	return ""
}

// embeddingOf reads an embedding row; ok is false if its vector is
// incomplete.
func embeddingOf(key string, r row) (Embedding, bool) {
	vec, ok := vector(r.vals)
	if !ok {
		return Embedding{}, false
	}
	return Embedding{Series: key, Time: r.time, Version: toInt(r.vals["version"]), Vector: vec}, true
}

// vector collects the e<i> columns of a pivoted row; ok is false if the
// row is empty or has a gap in the numbering (a component that was not
// written at this time).
func vector(vals map[string]any) ([]float64, bool) {
	comp := map[int]float64{}
	maxI := -1
	for k, v := range vals {
		if len(k) < 2 || k[0] != 'e' {
			continue
		}
		i, err := strconv.Atoi(k[1:])
		if err != nil || i < 0 || strconv.Itoa(i) != k[1:] {
			continue
		}
		f, ok := toFloat(v)
		if !ok {
			continue // null: not written at this time
		}
		comp[i] = f
		maxI = max(maxI, i)
	}
	if maxI < 0 || len(comp) != maxI+1 {
		return nil, false
	}
	vec := make([]float64, maxI+1)
	for i, f := range comp {
		vec[i] = f
	}
	return vec, true
}

// Similar returns the k series most similar to series, within the
// newest encoder version series has at or before at: see SimilarOfVersion.
func (c *Client) Similar(ctx context.Context, series string, at time.Time, k int, model string) ([]Match, error) {
	_, ms, err := c.SimilarOfVersion(ctx, series, at, k, model, NewestVersion)
	return ms, err
}

// SimilarOfVersion returns the k series whose embeddings are the most
// similar to series' own by Rank's scaled cosine, best first (ties by
// series key), and the embedding of series they were compared with. Only
// embeddings of one encoder version are compared: version, or with
// NewestVersion the version of series' latest embedding at or before at
// (zero: the latest).
// Each series contributes its latest embedding of that version at or
// before at, not its latest overall. Series with a zero vector or another
// dimension are not compared. It wraps ErrNoData if series has no
// embedding of the version.
func (c *Client) SimilarOfVersion(ctx context.Context, series string, at time.Time, k int, model string, version int64) (Embedding, []Match, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return Embedding{}, nil, err
	}
	if k < 1 {
		return Embedding{}, nil, invalid(fmt.Errorf("k is %d: ask for at least 1 similar series", k))
	}
	q, err := c.EmbeddingOfVersion(ctx, t.key, at, model, version)
	if err != nil {
		return Embedding{}, nil, err
	}
	if norm(q.Vector) == 0 {
		return q, nil, fmt.Errorf("embedding of series %q at %s is the zero vector: its cosine similarity is undefined", t.key, q.Time.UTC().Format(time.RFC3339Nano))
	}
	all, err := c.LatestEmbeddingsOfVersion(ctx, at, model, q.Version)
	if err != nil {
		return q, nil, err
	}
	return q, Rank(q, all, k), nil
}

// Rank returns the k embeddings of all most similar to q, best first
// (ties by series key), leaving out q's own series and embeddings of
// another version or dimension or with a zero vector. Similarity is the
// cosine with each dimension scaled by 1 over its standard deviation
// across q and the embeddings compared (see Scales).
func Rank(q Embedding, all []Embedding, k int) []Match {
	pop := [][]float64{q.Vector}
	var cand []Embedding
	for _, e := range all {
		if e.Series == q.Series || e.Version != q.Version || len(e.Vector) != len(q.Vector) || norm(e.Vector) == 0 {
			continue
		}
		cand = append(cand, e)
		pop = append(pop, e.Vector)
	}
	w := Scales(pop)
	out := make([]Match, 0, len(cand))
	for _, e := range cand {
		out = append(out, Match{
			Series: e.Series, Score: ScaledCosine(q.Vector, e.Vector, w), Cosine: Cosine(q.Vector, e.Vector),
			Time: e.Time, Version: e.Version,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Series < out[j].Series
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// Cosine is the cosine similarity of a and b (of one length), as Similar
// computes it.
func Cosine(a, b []float64) float64 {
	var dot float64
	for i := range a {
		dot += a[i] * b[i]
	}
	return dot / (norm(a) * norm(b))
}

// EmbeddingCount returns the number of embeddings model wrote, all series
// and versions together.
func (c *Client) EmbeddingCount(ctx context.Context, model string) (int64, error) {
	if err := checkModel(model); err != nil {
		return 0, err
	}
	meas := c.meas(sinks.MeasEmbedding)
	var n int64
	err := c.run(ctx, text{flux: EmbeddingCountFlux(c.bucket, meas, model), iql: []string{EmbeddingCountInfluxQL(meas, model)}}, func(_ int, r row) error {
		if c.lang == InfluxQL {
			n += toInt(r.vals["count"])
		} else {
			n += toInt(r.vals["_value"])
		}
		return nil
	})
	return n, err
}
