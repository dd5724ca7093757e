package classify

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/roentgo/roentgo/metrics"
)

// Stat is the performance of one output on a labelled set, at threshold
// 0.5 on the probability for accuracy, sensitivity and specificity.
type Stat struct {
	Name                 string
	Positives, Negatives int
	// Accuracy is the fraction of images classified correctly.
	Accuracy float64
	// Sensitivity is the fraction of positives detected (NaN without
	// positives); Specificity the fraction of negatives not flagged (NaN
	// without negatives).
	Sensitivity, Specificity float64
	// AUROC is the area under the ROC curve of the probability
	// (metrics.AUROCLabels); NaN unless both classes are present.
	AUROC float64
}

// Report is the evaluation of a model on a labelled set (Train's
// validation set, or Evaluate's).
type Report struct {
	// Findings has one Stat per output, in the order of Findings.
	Findings []Stat
	// Mean is the macro average of Findings: each metric is the mean over
	// the outputs where it is defined (not NaN); Positives and Negatives
	// are totals.
	Mean Stat
	// Train, Val, Steps and Duration describe the training run (zero for
	// Evaluate); Loss is the mean training loss of the last 10% of steps.
	Train, Val, Steps int
	Duration          time.Duration
	Loss              float64
}

// Evaluate returns the Report of m on inputs (Preprocess's output) with
// targets (Targets's output, one per input; a value above 0.5 counts as
// positive).
func Evaluate(m *Model, inputs, targets [][]float32) (*Report, error) {
	if len(inputs) != len(targets) {
		return nil, fmt.Errorf("classify: Evaluate: %d inputs but %d targets, expected one each", len(inputs), len(targets))
	}
	for i, t := range targets {
		if len(t) != len(Findings) {
			return nil, fmt.Errorf("classify: Evaluate: target %d has %d values, expected len(Findings) = %d", i, len(t), len(Findings))
		}
	}
	probs, _, err := m.Predict(inputs)
	if err != nil {
		return nil, err
	}
	return scoreReport(probs, targets), nil
}

// scoreReport computes the Report of probabilities against targets.
func scoreReport(probs, targets [][]float32) *Report {
	r := &Report{}
	for k, f := range Findings {
		s := Stat{Name: f.Name}
		scores, lab := make([]float64, len(probs)), make([]bool, len(probs))
		var tp, tn int
		for i := range probs {
			scores[i], lab[i] = float64(probs[i][k]), targets[i][k] > 0.5
			pred := probs[i][k] > 0.5
			switch {
			case lab[i]:
				s.Positives++
				if pred {
					tp++
				}
			default:
				s.Negatives++
				if !pred {
					tn++
				}
			}
		}
		s.Accuracy = ratio(tp+tn, s.Positives+s.Negatives)
		s.Sensitivity = ratio(tp, s.Positives)
		s.Specificity = ratio(tn, s.Negatives)
		s.AUROC = math.NaN()
		if a, err := metrics.AUROCLabels(scores, lab); err == nil {
			s.AUROC = a
		}
		r.Findings = append(r.Findings, s)
	}
	r.Mean = macro(r.Findings)
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// macro returns the macro average of stats (see Report.Mean).
func macro(stats []Stat) Stat {
	m := Stat{Name: "macro mean"}
	mean := func(get func(Stat) float64) float64 {
		var sum float64
		var n int
		for _, s := range stats {
			if v := get(s); !math.IsNaN(v) {
				sum += v
				n++
			}
		}
		if n == 0 {
			return math.NaN()
		}
		return sum / float64(n)
	}
	for _, s := range stats {
		m.Positives += s.Positives
		m.Negatives += s.Negatives
	}
	m.Accuracy = mean(func(s Stat) float64 { return s.Accuracy })
	m.Sensitivity = mean(func(s Stat) float64 { return s.Sensitivity })
	m.Specificity = mean(func(s Stat) float64 { return s.Specificity })
	m.AUROC = mean(func(s Stat) float64 { return s.AUROC })
	return m
}

// Stat returns the Stat of the finding called name, and whether there is
// one.
func (r *Report) Stat(name string) (Stat, bool) {
	for _, s := range r.Findings {
		if s.Name == name {
			return s, true
		}
	}
	return Stat{}, false
}

// Markdown returns the report as a Markdown table, one row per finding and
// the macro mean last, preceded by a line on the training run when there
// was one.
func (r *Report) Markdown() string {
	var b strings.Builder
	if r.Steps > 0 {
		fmt.Fprintf(&b, "%d training / %d validation phantoms, %d steps, %s, final loss %.4f\n\n",
			r.Train, r.Val, r.Steps, r.Duration.Round(time.Second), r.Loss)
	}
	b.WriteString("| finding | pos | neg | accuracy | sensitivity | specificity | AUROC |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	row := func(s Stat) {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s |\n", s.Name, s.Positives, s.Negatives,
			num(s.Accuracy), num(s.Sensitivity), num(s.Specificity), num(s.AUROC))
	}
	for _, s := range r.Findings {
		row(s)
	}
	row(r.Mean)
	return b.String()
}

// String returns Markdown.
func (r *Report) String() string { return r.Markdown() }

func num(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

// MarshalJSON writes the Stat as a JSON object with the metrics that are
// undefined (NaN, e.g. sensitivity without positives) as null, which JSON
// can carry and NaN it cannot.
func (s Stat) MarshalJSON() ([]byte, error) {
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		Name        string   `json:"name"`
		Positives   int      `json:"positives"`
		Negatives   int      `json:"negatives"`
		Accuracy    *float64 `json:"accuracy"`
		Sensitivity *float64 `json:"sensitivity"`
		Specificity *float64 `json:"specificity"`
		AUROC       *float64 `json:"auroc"`
	}{s.Name, s.Positives, s.Negatives, num(s.Accuracy), num(s.Sensitivity), num(s.Specificity), num(s.AUROC)})
}
