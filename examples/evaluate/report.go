package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/internal/atomicfile"
)

// num is a float64 that is written as JSON null when it is NaN or infinite
// (an undefined rate or AUROC).
type num float64

// MarshalJSON writes the number, or null when it is not finite.
func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number or null (NaN).
func (n *num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = num(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = num(f)
	return err
}

// report is the evaluation's JSON output (evaluation.json).
type report struct {
	Version      int                         `json:"version"`
	Settings     settings                    `json:"settings"`
	Counts       counts                      `json:"counts"`
	FID          map[string]*fidResult       `json:"fid"`
	KID          map[string]*kidResult       `json:"kid"`
	Diversity    *diversityResult            `json:"diversity"`
	Adherence    *adherenceResult            `json:"adherence"`
	Memorization map[string]*memoResult      `json:"memorization"`
	Images       []imageResult               `json:"images"`
	Timings      timings                     `json:"timings"`
	Notes        []string                    `json:"notes"`
	Cache        map[string]map[string]cache `json:"cache,omitempty"`
}

// settings are the options the numbers depend on.
type settings struct {
	Real               string            `json:"real"`
	Generated          string            `json:"generated"`
	Manifest           []string          `json:"manifest,omitempty"`
	Grouping           string            `json:"grouping"`
	Size               int               `json:"size"`
	Extractors         map[string]string `json:"extractors"`
	PixelsSize         int               `json:"pixels_size"`
	KIDSubsets         int               `json:"kid_subsets"`
	KIDSubsetSize      int               `json:"kid_subset_size"`
	Seed               uint64            `json:"seed"`
	GroupSize          int               `json:"group_size"`
	MemoSize           int               `json:"memo_size"`
	MemoThreshold      float64           `json:"memo_threshold"`
	MemoPixelThreshold float64           `json:"memo_pixel_threshold"`
	Neighbors          int               `json:"neighbors"`
	AdherenceThreshold float64           `json:"adherence_threshold"`
	Generation         *genSettings      `json:"generation,omitempty"`
}

type genSettings struct {
	Model     string  `json:"model"`
	Prompts   string  `json:"prompts"`
	PerPrompt int     `json:"per_prompt"`
	Steps     int     `json:"steps"`
	Guidance  float64 `json:"guidance"`
	Scheduler string  `json:"scheduler"`
	Seed      uint64  `json:"seed"`
}

type counts struct {
	Real      int `json:"real"`
	Generated int `json:"generated"`
	Groups    int `json:"groups"`
}

// fidResult is the Frechet distance in one feature space.
type fidResult struct {
	FID       num    `json:"fid"`
	MeanTerm  num    `json:"mean_term"`
	TraceSqrt num    `json:"trace_sqrt"`
	EpsAdded  bool   `json:"eps_added"`
	Method    string `json:"method"`
	Dim       int    `json:"dim"`
}

// kidResult is the kernel inception distance in one feature space.
type kidResult struct {
	KID        num `json:"kid"`
	Std        num `json:"std"`
	SubsetSize int `json:"subset_size"`
	Subsets    int `json:"subsets"`
}

// diversityResult is RoentGen's within-prompt MS-SSIM.
type diversityResult struct {
	MSSSIM    num           `json:"ms_ssim"`
	Std       num           `json:"std"`
	Groups    int           `json:"groups"`
	Skipped   int           `json:"skipped"`
	GroupSize int           `json:"group_size"`
	PerGroup  []groupResult `json:"per_group"`
}

type groupResult struct {
	Group  string `json:"group"`
	Prompt string `json:"prompt,omitempty"`
	Images int    `json:"images"`
	MSSSIM num    `json:"ms_ssim"`
}

// adherenceResult is the classifier's view of the generated images.
type adherenceResult struct {
	Classifier string                    `json:"classifier"`
	Threshold  float64                   `json:"threshold"`
	Findings   map[string]*findingResult `json:"findings"`
	Unmatched  []string                  `json:"unmatched_labels,omitempty"`
	MeanAUROC  num                       `json:"mean_auroc"`
}

type findingResult struct {
	Label         string `json:"label"`
	Stated        int    `json:"stated"`
	Negated       int    `json:"negated"`
	Omitted       int    `json:"omitted"`
	Uncertain     int    `json:"uncertain"`
	RateStated    num    `json:"rate_stated"`
	RateNegated   num    `json:"rate_negated"`
	RateOmitted   num    `json:"rate_omitted"`
	AUROC         num    `json:"auroc"`
	AUROCNegated  num    `json:"auroc_vs_negated"`
	MeanStated    num    `json:"mean_score_stated"`
	MeanNotStated num    `json:"mean_score_not_stated"`
}

// memoResult is the nearest-neighbour analysis in one space.
type memoResult struct {
	Similarity string     `json:"similarity"`
	Threshold  float64    `json:"threshold"`
	Above      int        `json:"above"`
	Fraction   num        `json:"fraction"`
	Mean       num        `json:"mean"`
	Median     num        `json:"median"`
	Max        num        `json:"max"`
	Closest    []pairJSON `json:"closest"`
	Sheet      string     `json:"sheet,omitempty"`
	// RealBaseline is the same summary for each real image's nearest other
	// real image (leave-one-out): how close distinct training images are.
	RealBaseline *baseline `json:"real_baseline"`
}

// baseline summarises the real set's leave-one-out nearest neighbours.
type baseline struct {
	Above    int `json:"above"`
	Fraction num `json:"fraction"`
	Mean     num `json:"mean"`
	Median   num `json:"median"`
	Max      num `json:"max"`
}

type pairJSON struct {
	Generated  string `json:"generated"`
	Real       string `json:"real"`
	Similarity num    `json:"similarity"`
}

// imageResult is one generated image's details.
type imageResult struct {
	File    string                    `json:"file"`
	Group   string                    `json:"group"`
	Prompt  string                    `json:"prompt,omitempty"`
	Nearest map[string][]neighborJSON `json:"nearest"`
	Scores  map[string]num            `json:"scores,omitempty"`
}

type neighborJSON struct {
	Real       string `json:"real"`
	Similarity num    `json:"similarity"`
}

type timings struct {
	TotalS          float64 `json:"total_s"`
	GenerateS       float64 `json:"generate_s,omitempty"`
	RealS           float64 `json:"real_s"`
	GeneratedS      float64 `json:"generated_s"`
	MetricsS        float64 `json:"metrics_s"`
	ImagesPerSecond float64 `json:"images_per_s"`
}

// cache tells, per set and computation, the cache file and whether it was hit.
type cache struct {
	File string `json:"file"`
	Hit  bool   `json:"hit"`
}

// spaceOrder is the order feature spaces are listed in.
var spaceOrder = []string{"pixel_correlation", "inception", "xrv", "clip", "classifier", "pixels"}

func sortedSpaces[T any](m map[string]T) []string {
	rank := map[string]int{}
	for i, s := range spaceOrder {
		rank[s] = i
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		ri, oki := rank[ks[i]]
		rj, okj := rank[ks[j]]
		if oki != okj {
			return oki
		}
		if ri != rj {
			return ri < rj
		}
		return ks[i] < ks[j]
	})
	return ks
}

// writeSummary writes the short human-readable summary.
func writeSummary(w io.Writer, r *report) {
	fmt.Fprintf(w, "roentgo evaluate: %d real, %d generated images (%d prompt groups) at %dx%d\n",
		r.Counts.Real, r.Counts.Generated, r.Counts.Groups, r.Settings.Size, r.Settings.Size)
	if len(r.FID) > 0 {
		var parts []string
		for _, k := range sortedSpaces(r.FID) {
			parts = append(parts, fmt.Sprintf("%s %.4g", k, float64(r.FID[k].FID)))
		}
		fmt.Fprintf(w, "FID:        %s\n", strings.Join(parts, ", "))
	}
	if len(r.KID) > 0 {
		var parts []string
		for _, k := range sortedSpaces(r.KID) {
			parts = append(parts, fmt.Sprintf("%s %.4g ± %.2g", k, float64(r.KID[k].KID), float64(r.KID[k].Std)))
		}
		fmt.Fprintf(w, "KID:        %s\n", strings.Join(parts, ", "))
	}
	if d := r.Diversity; d != nil {
		fmt.Fprintf(w, "Diversity:  MS-SSIM within prompt %.4f ± %.4f over %d groups of up to %d (lower is more diverse)\n",
			float64(d.MSSSIM), float64(d.Std), d.Groups, d.GroupSize)
	}
	if a := r.Adherence; a != nil {
		fmt.Fprintf(w, "Adherence:  %s at %.2f, mean AUROC %.3f\n", a.Classifier, a.Threshold, float64(a.MeanAUROC))
		var ks []string
		for k := range a.Findings {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			f := a.Findings[k]
			fmt.Fprintf(w, "  %-26s detected: stated %s (n=%d), negated %s (n=%d), omitted %s (n=%d); AUROC %s\n",
				k, pct(f.RateStated), f.Stated, pct(f.RateNegated), f.Negated, pct(f.RateOmitted), f.Omitted, fnum(f.AUROC))
		}
	}
	for _, k := range sortedSpaces(r.Memorization) {
		m := r.Memorization[k]
		fmt.Fprintf(w, "Memorised:  %-17s %d of %d (%s) with %s >= %.3g to a real image; best %s, median %s",
			k, m.Above, r.Counts.Generated, pct(m.Fraction), m.Similarity, m.Threshold, fnum(m.Max), fnum(m.Median))
		if b := m.RealBaseline; b != nil {
			fmt.Fprintf(w, " (real vs real: %s, median %s)", pct(b.Fraction), fnum(b.Median))
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func pct(v num) string {
	if math.IsNaN(float64(v)) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(v))
}

func fnum(v num) string {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return "-"
	}
	return fmt.Sprintf("%.4f", float64(v))
}

// writeSheet writes the closest pairs side by side as a grayscale PNG: one
// row per pair, the generated image on the left and its nearest real image
// on the right, tile x tile each, with a gap.
func writeSheet(path string, pairs [][2][]float64, tile int) error {
	rows := make([][][]float64, len(pairs))
	for i, p := range pairs {
		rows[i] = [][]float64{p[0], p[1]}
	}
	img := tileSheet(rows, tile)
	b, err := pipeline.EncodePNG(img, []pipeline.TextChunk{{Key: "software", Value: "roentgo evaluate"},
		{Key: "description", Value: "closest generated (left) / real (right) pairs, most similar first"}})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}
