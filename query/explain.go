package query

import (
	"strconv"
	"strings"
	"time"

	"github.com/tsrep/tsrep/ingest"
)

// Explain is what a query runs, in both languages, as --explain prints
// it: each statement of InfluxQL, or Flux script, after a comment that
// says what it reads and when it runs.
type Explain struct {
	Flux     string
	InfluxQL string
}

// step is one query of an explanation; fluxWhat, if set, says what its
// Flux returns when that differs.
type step struct {
	what, fluxWhat string
	q              text
}

func explain(steps ...step) Explain {
	var f, q strings.Builder
	for i, s := range steps {
		if i > 0 {
			f.WriteString("\n\n")
			q.WriteString("\n\n")
		}
		if len(steps) > 1 {
			n := strconv.Itoa(i+1) + ". "
			fw := s.what
			if s.fluxWhat != "" {
				fw = s.fluxWhat
			}
			f.WriteString("// " + n + fw + "\n")
			q.WriteString("-- " + n + s.what + "\n")
		}
		f.WriteString(s.q.flux)
		q.WriteString(statements(s.q.iql))
	}
	return Explain{Flux: f.String(), InfluxQL: q.String()}
}

// versionSteps are the steps of reading the embeddings of version (of
// every series whose output tags include tags): the newest embeddings, and
// if one has another version, the embeddings of the version; v names the
// version in the text ("V" when it is not known before step 1 runs).
func versionSteps(bucket, measurement string, tags []ingest.KV, at time.Time, v string, zero bool, whose string) []step {
	newest := newestEmbeddingText(bucket, measurement, tags, at)
	back := versionQuery(bucket, measurement, tags, at, v, zero)
	only := "only if one of them has another version than " + v + ": "
	if whose == "the series'" {
		only = "only if it has another version than " + v + ": "
	}
	what := only + whose + " latest embedding of version " + v
	fluxWhat := only + "the embeddings of version " + v + " (embeddings without a version field count as 0), of which tsrep keeps each series' newest"
	if zero {
		what += " (embeddings without a version field count as 0: the first statement finds those with version = 0, the second each series' first embedding with a version; tsrep then reads, per series that has no embedding with version = 0, its newest embedding before that one)"
	}
	return []step{
		{what: whose + " newest embedding", q: newest},
		{what: what, fluxWhat: fluxWhat, q: back},
	}
}

// EmbeddingExplain is what EmbeddingOfVersion runs.
func EmbeddingExplain(bucket, measurement, series string, at time.Time, model string, version int64) (Explain, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return Explain{}, err
	}
	if version == NewestVersion {
		return explain(step{q: newestEmbeddingText(bucket, measurement, t.tags, at)}), nil
	}
	return explain(versionSteps(bucket, measurement, t.tags, at, strconv.FormatInt(version, 10), version == 0, "the series'")...), nil
}

// SimilarExplain is what SimilarOfVersion runs; the cosine similarities
// are computed from the rows.
func SimilarExplain(bucket, measurement, series string, at time.Time, model string, version int64) (Explain, error) {
	t, err := parseTarget(series, model)
	if err != nil {
		return Explain{}, err
	}
	v := "V"
	var steps []step
	if version == NewestVersion {
		steps = append(steps, step{what: "the series' newest embedding: its version V is the one compared", q: newestEmbeddingText(bucket, measurement, t.tags, at)})
	} else {
		v = strconv.FormatInt(version, 10)
		steps = append(steps, versionSteps(bucket, measurement, t.tags, at, v, version == 0, "the series'")...)
	}
	steps = append(steps, versionSteps(bucket, measurement, modelTag(model), at, v, version == 0, "every series'")...)
	return explain(steps...), nil
}
