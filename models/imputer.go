package models

import (
	"math"

	"github.com/tsrep/tsrep/internal/binenc"
)

// This file holds the ssl learner's imputation of missing points. A
// missing point is first filled by linear interpolation between its
// nearest observed neighbours in the window; a per-series linear model,
// fitted by recursive least squares, then predicts the interpolation's
// error from what surrounds the gap:
//
//   - both sides: the ImputeNeighbours slots before and after it (each
//     its value relative to the interpolation, and whether it is
//     observed), and the distances to the nearest observed slots;
//   - other channels (multichannel mode: the other fields of the same
//     measurement and tag set, in the adjacent rows of the batch): each
//     one's value at the gap relative to the interpolation of its own
//     neighbours there, and relative to its interpolation across this
//     channel's gap (how far the other channel moved away from a straight
//     line where this one is missing).
//
// The model is trained without labels, as the imputation objective of
// the seed describes: in a training window a random share of the observed
// points is hidden, and the model learns to reconstruct the hidden ones
// (the loss is on hidden points only). Its weights start at zero, so a new
// series is imputed by interpolation until it has learnt better.

// imputeMaxGap caps the gap-distance inputs (slots).
const imputeMaxGap = 20

// imputeDim is the imputation model's input size with k neighbours a side
// and others other channels.
func imputeDim(k, others int) int { return 4*k + 2 + 4*others + 1 }

// imputeCtx is one window's view for imputation: the channel's normalised
// values (NaN where not observed, or hidden) and its interpolation, and
// the same for the other channels of its group.
type imputeCtx struct {
	z, ip   []float64
	others  [][]float64 // the other channels' normalised values
	othersI [][]float64 // and their interpolations
}

// nearest returns the nearest observed slots left and right of j (-1 and
// len(z) if none).
func nearest(z []float64, j int) (l, r int) {
	l, r = j-1, j+1
	for l >= 0 && math.IsNaN(z[l]) {
		l--
	}
	for r < len(z) && math.IsNaN(z[r]) {
		r++
	}
	return l, r
}

// imputeFeatures writes the model's inputs for slot j of c into dst and
// returns them.
func imputeFeatures(c *imputeCtx, j, k int, dst []float64) []float64 {
	z := c.z
	base := c.ip[j]
	dst = dst[:0]
	for d := 1; d <= k; d++ {
		for _, t := range [2]int{j - d, j + d} {
			if t >= 0 && t < len(z) && !math.IsNaN(z[t]) {
				dst = append(dst, z[t]-base, 1)
			} else {
				dst = append(dst, 0, 0)
			}
		}
	}
	l, r := nearest(z, j)
	gl, gr := float64(imputeMaxGap), float64(imputeMaxGap)
	if l >= 0 {
		gl = math.Min(float64(j-l), imputeMaxGap)
	}
	if r < len(z) {
		gr = math.Min(float64(r-j), imputeMaxGap)
	}
	dst = append(dst, gl/10, gr/10)
	for o, oz := range c.others {
		// The other channel's value at the gap against its own neighbours'
		// interpolation there (leaving the value itself out): how far it
		// departs from a smooth course where this one is missing.
		if !math.IsNaN(oz[j]) {
			ol, or := nearest(oz, j)
			switch {
			case ol >= 0 && or < len(oz):
				f := float64(j-ol) / float64(or-ol)
				dst = append(dst, oz[j]-(oz[ol]+(oz[or]-oz[ol])*f), 1)
			case ol >= 0:
				dst = append(dst, oz[j]-oz[ol], 1)
			case or < len(oz):
				dst = append(dst, oz[j]-oz[or], 1)
			default:
				dst = append(dst, 0, 0)
			}
		} else {
			dst = append(dst, 0, 0)
		}
		// Its course across this channel's gap: its (interpolated) value at
		// the gap against the straight line between its values at the
		// gap's observed ends.
		if l >= 0 && r < len(z) {
			oi := c.othersI[o]
			f := float64(j-l) / float64(r-l)
			dst = append(dst, oi[j]-(oi[l]+(oi[r]-oi[l])*f), 1)
		} else {
			dst = append(dst, 0, 0)
		}
	}
	return append(dst, 1)
}

// imputer is one series' imputation model.
type imputer struct {
	others int // other channels it was sized for
	rls    *RLS
}

func newImputer(k, others int, forgetting float64) *imputer {
	return &imputer{others: others, rls: NewRLS(imputeDim(k, others), forgetting)}
}

func (m *imputer) appendState(w *binenc.Writer) {
	w.Len(m.others)
	m.rls.appendState(w)
}

func loadImputer(r *binenc.Reader, k int, forgetting float64, scaled bool) *imputer {
	others := r.Len(MaxImputeChannels, 0)
	m := newImputer(k, others, forgetting)
	m.rls.loadState(r, scaled)
	return m
}

// MaxImputeChannels caps the other channels the imputation model reads
// (the first ones, in the group's order).
const MaxImputeChannels = 16
