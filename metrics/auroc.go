package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// AUROC returns the area under the ROC curve of a score meant to rank the
// positives above the negatives, as the Mann–Whitney U statistic defines it:
//
//	AUROC = 1/(P·N) Σ_{i∈pos} Σ_{j∈neg} ([s_i > s_j] + ½[s_i = s_j]),
//
// with P = len(pos) and N = len(neg). Ties count one half, as in
// sklearn.metrics.roc_auc_score (the trapezoidal area of the ROC curve
// through tied thresholds). It is computed from midranks in
// O((P+N) log(P+N)): U = R_pos - P(P+1)/2, AUROC = U/(P·N), where R_pos is
// the sum of the positives' ranks in the pooled sample (ties get the mean of
// the ranks they span). It fails when either set is empty or a score is NaN.
func AUROC(pos, neg []float64) (float64, error) {
	p, n := len(pos), len(neg)
	if p == 0 || n == 0 {
		return math.NaN(), fmt.Errorf("metrics: AUROC needs positives and negatives, have %d and %d", p, n)
	}
	type item struct {
		s   float64
		pos bool
	}
	all := make([]item, 0, p+n)
	for _, s := range pos {
		all = append(all, item{s, true})
	}
	for _, s := range neg {
		all = append(all, item{s, false})
	}
	for _, it := range all {
		if math.IsNaN(it.s) {
			return math.NaN(), errors.New("metrics: AUROC: a score is NaN")
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].s < all[j].s })
	var rpos float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].s == all[i].s {
			j++
		}
		// Ranks i+1 .. j (1-based) share the midrank (i+1+j)/2.
		mid := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			if all[k].pos {
				rpos += mid
			}
		}
		i = j
	}
	u := rpos - float64(p)*float64(p+1)/2
	return u / (float64(p) * float64(n)), nil
}

// AUROCLabels is AUROC for scores with one boolean label each (true:
// positive).
func AUROCLabels(scores []float64, positive []bool) (float64, error) {
	if len(scores) != len(positive) {
		return math.NaN(), fmt.Errorf("metrics: AUROC: %d scores but %d labels", len(scores), len(positive))
	}
	var pos, neg []float64
	for i, s := range scores {
		if positive[i] {
			pos = append(pos, s)
		} else {
			neg = append(neg, s)
		}
	}
	return AUROC(pos, neg)
}
