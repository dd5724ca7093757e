package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// LabelState is what a prompt (or report) says about one finding, in
// CheXpert's label convention.
type LabelState int8

// Label states: Omitted (blank: not mentioned), Negated (0: mentioned as
// absent), Stated (1: present), Uncertain (-1).
const (
	LabelOmitted LabelState = iota
	LabelNegated
	LabelStated
	LabelUncertain
)

// String returns "omitted", "negated", "stated" or "uncertain".
func (s LabelState) String() string {
	switch s {
	case LabelOmitted:
		return "omitted"
	case LabelNegated:
		return "negated"
	case LabelStated:
		return "stated"
	case LabelUncertain:
		return "uncertain"
	}
	return fmt.Sprintf("LabelState(%d)", int(s))
}

// ParseLabel reads a CheXpert-style label value: "" (or "nan", "none",
// "null") is omitted; a number is stated when 1, negated when 0 and
// uncertain when -1 ("1.0", "0.0", "-1.0" as CheXpert writes them);
// "true"/"yes" and "false"/"no" are stated and negated. Anything else is an
// error.
func ParseLabel(v string) (LabelState, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	switch s {
	case "", "nan", "none", "null":
		return LabelOmitted, nil
	case "true", "yes":
		return LabelStated, nil
	case "false", "no":
		return LabelNegated, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err == nil {
		switch f {
		case 1:
			return LabelStated, nil
		case 0:
			return LabelNegated, nil
		case -1:
			return LabelUncertain, nil
		}
	}
	return LabelOmitted, fmt.Errorf("metrics: label value %q; expected 1, 0, -1 (or 1.0, 0.0, -1.0), true/false or empty", v)
}

// FindingAdherence is how well images follow what their prompts say about
// one finding, judged by a classifier's scores.
type FindingAdherence struct {
	// Stated, Negated, Omitted and Uncertain count the images by what their
	// prompt says about the finding.
	Stated, Negated, Omitted, Uncertain int
	// RateStated, RateNegated and RateOmitted are the fractions of each
	// group whose score is at least the threshold (the classifier "detects"
	// the finding); NaN for an empty group. Adherence wants RateStated high
	// and the other two low.
	RateStated, RateNegated, RateOmitted float64
	// AUROC ranks stated (positive) against negated and omitted (negative)
	// images by score; AUROCNegated against negated images only. NaN when a
	// side is empty. Uncertain images are left out of both.
	AUROC, AUROCNegated float64
	// MeanStated and MeanNotStated are the mean scores of the stated and of
	// the negated-or-omitted images (NaN when empty).
	MeanStated, MeanNotStated float64
}

// Adherence summarises a classifier's scores for one finding over images
// whose prompts state, negate or omit it (states[i] for scores[i]):
// detection rates at threshold per group, and AUROC (see FindingAdherence).
// It fails when the lengths differ or a score is NaN.
func Adherence(scores []float64, states []LabelState, threshold float64) (FindingAdherence, error) {
	var r FindingAdherence
	if len(scores) != len(states) {
		return r, fmt.Errorf("metrics: Adherence: %d scores but %d labels", len(scores), len(states))
	}
	var stated, negated, omitted []float64
	var detS, detN, detO int
	for i, s := range scores {
		if math.IsNaN(s) {
			return r, fmt.Errorf("metrics: Adherence: score %d is NaN", i)
		}
		hit := s >= threshold
		switch states[i] {
		case LabelStated:
			stated = append(stated, s)
			if hit {
				detS++
			}
		case LabelNegated:
			negated = append(negated, s)
			if hit {
				detN++
			}
		case LabelOmitted:
			omitted = append(omitted, s)
			if hit {
				detO++
			}
		case LabelUncertain:
			r.Uncertain++
		default:
			return r, fmt.Errorf("metrics: Adherence: label %d has state %v", i, states[i])
		}
	}
	r.Stated, r.Negated, r.Omitted = len(stated), len(negated), len(omitted)
	rate := func(k, n int) float64 {
		if n == 0 {
			return math.NaN()
		}
		return float64(k) / float64(n)
	}
	r.RateStated, r.RateNegated, r.RateOmitted = rate(detS, r.Stated), rate(detN, r.Negated), rate(detO, r.Omitted)
	notStated := append(append([]float64(nil), negated...), omitted...)
	r.AUROC, r.AUROCNegated = math.NaN(), math.NaN()
	if len(stated) > 0 && len(notStated) > 0 {
		r.AUROC, _ = AUROC(stated, notStated)
	}
	if len(stated) > 0 && len(negated) > 0 {
		r.AUROCNegated, _ = AUROC(stated, negated)
	}
	r.MeanStated, r.MeanNotStated = mean(stated), mean(notStated)
	return r, nil
}

// mean returns the mean of v, NaN when v is empty.
func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
