package report

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tsrep/tsrep/query"
)

// TestSimilarityGrid: the heat map's cell (i, j) is the score tsrep query
// similar gives series j for query i, whichever of the version's series
// the map shows, so that a row read from high to low is that query's
// ranking.
func TestSimilarityGrid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var all []query.Embedding
	for i := range 9 {
		v := make([]float64, 6)
		for j := range v {
			// Dimensions of very different spread, so that the scaled
			// cosine and the plain one disagree.
			v[j] = r.NormFloat64() * math.Pow(10, float64(j%3))
		}
		v[5] = 3 // the same in every series: carries no weight
		all = append(all, query.Embedding{Series: string(rune('a' + i)), Version: 4, Vector: v})
	}
	sel := []query.Embedding{all[7], all[1], all[4], all[0]}
	g := similarityGrid(sel, all)
	differs := false
	for i, q := range sel {
		score := map[string]float64{}
		for _, m := range query.Rank(q, all, len(all)) {
			score[m.Series] = m.Score
		}
		for j, e := range sel {
			want := 1.0
			if i != j {
				want = score[e.Series]
			}
			if got := g.at(i, j); math.Abs(got-want) > 1e-12 {
				t.Fatalf("cell (%s, %s) = %.15f, query similar scores %.15f", q.Series, e.Series, got, want)
			}
			if math.Abs(g.at(i, j)-query.Cosine(q.Vector, e.Vector)) > 1e-3 {
				differs = true
			}
		}
	}
	if !differs {
		t.Fatal("the grid equals the plain cosine: the test data do not tell the two apart")
	}
}
