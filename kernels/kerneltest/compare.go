package kerneltest

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// Mismatch is one element outside the tolerance.
type Mismatch struct {
	Index     int // flat index into the compared slices
	Got, Want float32
}

// Report summarises a comparison of two slices.
type Report struct {
	N      int     // elements compared
	Bad    int     // elements outside the tolerance (NaN where the other is not counts)
	MaxAbs float64 // largest |got - want| over elements where both are finite
	MaxRel float64 // largest |got - want| / |want| over finite non-zero want
	AbsAt  int     // index of MaxAbs (-1 if none)
	RelAt  int     // index of MaxRel (-1 if none)
	First  []Mismatch
	Atol   float64
	Rtol   float64
}

// maxListed is how many mismatches a Report keeps.
const maxListed = 8

// Check compares got with want element by element: an element passes when
// |got - want| <= atol + rtol*|want|, when both are NaN, or when both are the same
// infinity. Slices of different lengths fail on every extra element.
func Check(got, want []float32, atol, rtol float64) Report {
	r := Report{N: max(len(got), len(want)), AbsAt: -1, RelAt: -1, Atol: atol, Rtol: rtol}
	for i := 0; i < r.N; i++ {
		if i >= len(got) || i >= len(want) {
			r.Bad++
			continue
		}
		g, w := float64(got[i]), float64(want[i])
		ok := false
		switch {
		case math.IsNaN(g) || math.IsNaN(w):
			ok = math.IsNaN(g) && math.IsNaN(w)
		case math.IsInf(g, 0) || math.IsInf(w, 0):
			ok = g == w
		default:
			d := math.Abs(g - w)
			if d > r.MaxAbs || r.AbsAt < 0 {
				r.MaxAbs, r.AbsAt = d, i
			}
			if w != 0 {
				if rel := d / math.Abs(w); rel > r.MaxRel || r.RelAt < 0 {
					r.MaxRel, r.RelAt = rel, i
				}
			}
			ok = d <= atol+rtol*math.Abs(w)
		}
		if !ok {
			r.Bad++
			if len(r.First) < maxListed {
				r.First = append(r.First, Mismatch{i, got[i], want[i]})
			}
		}
	}
	return r
}

// OK reports whether every element passed.
func (r Report) OK() bool { return r.Bad == 0 }

// String describes the comparison: counts, maximum differences and the first
// mismatches.
func (r Report) String() string { return r.format(nil) }

// format is String with indices shown as coordinates of shape when it is non-nil.
func (r Report) format(shape []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d elements outside |got-want| <= %.3g + %.3g*|want|; max abs diff %.4g",
		r.Bad, r.N, r.Atol, r.Rtol, r.MaxAbs)
	if r.AbsAt >= 0 {
		fmt.Fprintf(&b, " at %s", index(r.AbsAt, shape))
	}
	fmt.Fprintf(&b, ", max rel diff %.4g", r.MaxRel)
	if r.RelAt >= 0 {
		fmt.Fprintf(&b, " at %s", index(r.RelAt, shape))
	}
	for _, m := range r.First {
		fmt.Fprintf(&b, "\n\t%s: got %.9g, want %.9g (diff %.3g)", index(m.Index, shape), m.Got, m.Want,
			float64(m.Got)-float64(m.Want))
	}
	if r.Bad > len(r.First) {
		fmt.Fprintf(&b, "\n\t... and %d more", r.Bad-len(r.First))
	}
	return b.String()
}

// index formats a flat index, as coordinates [i, j, ...] when shape is given.
func index(i int, shape []int) string {
	if len(shape) == 0 {
		return fmt.Sprintf("[%d]", i)
	}
	c := make([]string, len(shape))
	j := i
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			c[d] = fmt.Sprint(j % shape[d])
			j /= shape[d]
		}
	}
	return fmt.Sprintf("[%s] (flat %d)", strings.Join(c, ", "), i)
}

// Compare checks got against want (see Check) and reports a failure on t, naming
// the comparison, with the maximum differences and the first mismatches. It
// returns whether all elements passed.
func Compare(t testing.TB, name string, got, want []float32, atol, rtol float64) bool {
	t.Helper()
	return CompareShape(t, name, nil, got, want, atol, rtol)
}

// CompareShape is Compare that prints mismatch indices as coordinates in shape
// (row-major; nil prints flat indices).
func CompareShape(t testing.TB, name string, shape []int, got, want []float32, atol, rtol float64) bool {
	t.Helper()
	r := Check(got, want, atol, rtol)
	if !r.OK() {
		t.Errorf("%s: %s", name, r.format(shape))
	}
	return r.OK()
}
