package query_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tsrep/tsrep/query"
	"github.com/tsrep/tsrep/query/querytest"
)

// A dimension that is large in every series makes all plain cosines near
// 1; scaled by the spread across the series, the dimensions that tell
// them apart count, and the scores separate.
func TestRankScalesAwaySharedDimension(t *testing.T) {
	q := query.Embedding{Series: "q", Vector: []float64{100, 1, 0}}
	all := []query.Embedding{
		q,
		{Series: "like", Vector: []float64{101, 0.9, 0.1}},   // q's pattern in the dims that vary
		{Series: "unlike", Vector: []float64{100, 0, 1}},     // the opposite pattern, same shared value
		{Series: "bigger", Vector: []float64{140, 0.5, 0.5}}, // a larger shared value
	}
	ms := query.Rank(q, all, 10)
	if len(ms) != 3 || ms[0].Series != "like" {
		t.Fatalf("ranked %+v, want like first", ms)
	}
	for _, m := range ms {
		if m.Cosine < 0.99 {
			t.Errorf("%s: plain cosine %.4f, want near 1 (the shared dimension dominates it)", m.Series, m.Cosine)
		}
	}
	if ms[0].Score-ms[len(ms)-1].Score < 0.1 {
		t.Errorf("scaled scores %+v do not separate the series", ms)
	}
}

// Rank's scores are querytest's reference computation, and do not change
// when one dimension of every embedding is rescaled (they are in the
// population's units); dimensions that do not vary are left out.
func TestRankMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, D = 30, 8
	var all []query.Embedding
	for i := range n {
		v := make([]float64, D)
		for j := range v {
			v[j] = r.NormFloat64() * float64(j+1)
		}
		v[D-1] = 3 // the same in every series
		all = append(all, query.Embedding{Series: string(rune('a' + i)), Vector: v, Time: time.Unix(int64(i), 0)})
	}
	q := all[0]
	var others [][]float64
	for _, e := range all[1:] {
		others = append(others, e.Vector)
	}
	scaled, plain := querytest.ScaledCosines(q.Vector, others)
	want := map[string][2]float64{}
	for i, e := range all[1:] {
		want[e.Series] = [2]float64{scaled[i], plain[i]}
	}
	ms := query.Rank(q, all, n)
	if len(ms) != n-1 {
		t.Fatalf("%d matches", len(ms))
	}
	for i, m := range ms {
		w := want[m.Series]
		if math.Abs(m.Score-w[0]) > 1e-12 || math.Abs(m.Cosine-w[1]) > 1e-12 {
			t.Errorf("%s: score %v cosine %v, want %v %v", m.Series, m.Score, m.Cosine, w[0], w[1])
		}
		if i > 0 && m.Score > ms[i-1].Score {
			t.Errorf("not best first at %d", i)
		}
	}
	// Rescale dimension 2 of every embedding: the scaled scores stand.
	for i := range all {
		v := append([]float64(nil), all[i].Vector...)
		v[2] *= 1000
		all[i].Vector = v
	}
	ms2 := query.Rank(all[0], all, n)
	for i := range ms {
		if ms2[i].Series != ms[i].Series || math.Abs(ms2[i].Score-ms[i].Score) > 1e-9 {
			t.Fatalf("after rescaling a dimension, match %d: %+v, was %+v", i, ms2[i], ms[i])
		}
	}
}

func TestScales(t *testing.T) {
	if w := query.Scales([][]float64{{1, 2}}); w != nil {
		t.Errorf("one vector: %v, want nil", w)
	}
	w := query.Scales([][]float64{{0, 5, 1}, {2, 5, 1}, {4, 5, 1 + 1e-13}})
	if math.Abs(w[0]-1/math.Sqrt(8.0/3)) > 1e-12 || w[1] != 0 || w[2] != 0 {
		t.Errorf("scales %v, want [1/sd, 0, 0]", w)
	}
	a, b := []float64{1, 2, 3}, []float64{3, 2, 1}
	if query.ScaledCosine(a, b, nil) != query.Cosine(a, b) || query.ScaledCosine(a, b, []float64{0, 0, 0}) != query.Cosine(a, b) {
		t.Error("nil or zero scales: want the plain cosine")
	}
}
