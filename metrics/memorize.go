package metrics

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// Neighbor is one reference row close to a query row.
type Neighbor struct {
	// Index is the row of the reference set.
	Index int
	// Similarity is the cosine similarity (or correlation) of the two rows.
	Similarity float64
}

// neighborBlock bounds the query rows compared at once (memory:
// neighborBlock × reference rows float64).
const neighborBlock = 256

// unitRows returns the rows of a, optionally centred on their own mean,
// scaled to unit length; rows of zero length stay zero (their similarity to
// anything is 0).
func unitRows(a mat.Matrix, centre bool) *mat.Dense {
	r, c := a.Dims()
	out := mat.NewDense(r, c, nil)
	out.Copy(a)
	for i := 0; i < r; i++ {
		row := out.RawRowView(i)
		if centre {
			var m float64
			for _, v := range row {
				m += v
			}
			m /= float64(c)
			for j := range row {
				row[j] -= m
			}
		}
		var ss float64
		for _, v := range row {
			ss += v * v
		}
		if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
			clear(row)
			continue
		}
		inv := 1 / math.Sqrt(ss)
		for j := range row {
			row[j] *= inv
		}
	}
	return out
}

// CosineNeighbors returns, for each row of query, the k rows of ref with the
// largest cosine similarity x·y/(|x||y|), best first (equal similarities in
// increasing Index). A zero row has similarity 0 to every row. query and ref
// must have the same number of columns; k is capped at ref's row count.
func CosineNeighbors(query, ref mat.Matrix, k int) ([][]Neighbor, error) {
	return neighbors(query, ref, k, false)
}

// CorrelationNeighbors is CosineNeighbors with Pearson's correlation
// coefficient as the similarity: each row is centred on its own mean before
// the cosine (for downsampled images: the pixel correlation, insensitive to
// brightness and contrast). A constant row has correlation 0 to every row.
func CorrelationNeighbors(query, ref mat.Matrix, k int) ([][]Neighbor, error) {
	return neighbors(query, ref, k, true)
}

func neighbors(query, ref mat.Matrix, k int, centre bool) ([][]Neighbor, error) {
	nq, d := query.Dims()
	nr, dr := ref.Dims()
	if d != dr {
		return nil, fmt.Errorf("metrics: neighbours: dimensions differ (%d and %d)", d, dr)
	}
	if nr == 0 || k < 1 {
		return nil, fmt.Errorf("metrics: neighbours: need at least one reference row and k >= 1 (have %d rows, k %d)", nr, k)
	}
	k = min(k, nr)
	q, r := unitRows(query, centre), unitRows(ref, centre)
	out := make([][]Neighbor, nq)
	var sim mat.Dense
	for lo := 0; lo < nq; lo += neighborBlock {
		hi := min(lo+neighborBlock, nq)
		sim.Reset()
		sim.Mul(q.Slice(lo, hi, 0, d), r.T())
		for i := lo; i < hi; i++ {
			out[i] = topK(sim.RawRowView(i-lo), k)
		}
	}
	return out, nil
}

// topK returns the k largest entries of s with their indices, largest first,
// ties in increasing index.
func topK(s []float64, k int) []Neighbor {
	best := make([]Neighbor, 0, k)
	for j, v := range s {
		// Clamp rounding above 1 (identical rows).
		v = min(v, 1)
		if len(best) == k && v <= best[k-1].Similarity {
			continue
		}
		pos := len(best)
		for pos > 0 && best[pos-1].Similarity < v {
			pos--
		}
		if len(best) < k {
			best = append(best, Neighbor{})
		}
		copy(best[pos+1:], best[pos:len(best)-1])
		best[pos] = Neighbor{Index: j, Similarity: v}
	}
	return best
}

// MemorizationSummary summarises the nearest-neighbour similarities of a set
// of generated images to a training set.
type MemorizationSummary struct {
	// N is the number of generated images.
	N int
	// Threshold is the similarity at or above which an image counts as a
	// near copy; Above counts those images and Fraction is Above/N.
	Threshold float64
	Above     int
	Fraction  float64
	// Mean, Median and Max are over each image's best similarity.
	Mean, Median, Max float64
}

// SummarizeMemorization summarises nn (each query's neighbours, best first,
// as CosineNeighbors returns them) against a threshold. Queries without
// neighbours are not counted.
func SummarizeMemorization(nn [][]Neighbor, threshold float64) MemorizationSummary {
	s := MemorizationSummary{Threshold: threshold, Mean: math.NaN(), Median: math.NaN(), Max: math.NaN()}
	var top []float64
	for _, l := range nn {
		if len(l) == 0 {
			continue
		}
		top = append(top, l[0].Similarity)
		if l[0].Similarity >= threshold {
			s.Above++
		}
	}
	s.N = len(top)
	if s.N == 0 {
		return s
	}
	s.Fraction = float64(s.Above) / float64(s.N)
	s.Mean = mean(top)
	sort.Float64s(top)
	if s.N%2 == 1 {
		s.Median = top[s.N/2]
	} else {
		s.Median = (top[s.N/2-1] + top[s.N/2]) / 2
	}
	s.Max = top[s.N-1]
	return s
}

// Pair is a generated image and its nearest training image.
type Pair struct {
	// Query is the generated image's row, Ref the training image's.
	Query, Ref int
	// Similarity is their similarity.
	Similarity float64
}

// ClosestPairs returns the n queries most similar to their nearest
// reference row, each with that neighbour, most similar first (ties in
// increasing Query).
func ClosestPairs(nn [][]Neighbor, n int) []Pair {
	var ps []Pair
	for i, l := range nn {
		if len(l) > 0 {
			ps = append(ps, Pair{Query: i, Ref: l[0].Index, Similarity: l[0].Similarity})
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Similarity > ps[j].Similarity })
	if len(ps) > n {
		ps = ps[:max(n, 0)]
	}
	return ps
}

// ExcludeSelf returns nn without each query's own row (query i's neighbour
// with Index i), for a set compared with itself: the leave-one-out nearest
// neighbours, a baseline of how similar distinct images of the training set
// are. nn is not modified.
func ExcludeSelf(nn [][]Neighbor) [][]Neighbor {
	out := make([][]Neighbor, len(nn))
	for i, l := range nn {
		out[i] = make([]Neighbor, 0, len(l))
		for _, nb := range l {
			if nb.Index != i {
				out[i] = append(out[i], nb)
			}
		}
	}
	return out
}
