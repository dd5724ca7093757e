package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/metrics"
	"github.com/roentgo/roentgo/phantom"
	"github.com/roentgo/roentgo/phantom/classify"
)

// Seeds of the phantoms the proof stages draw, each its own stream so that
// none coincides with the training set (DatasetSeed(seed, i)).
const (
	classifierStream = 0xC1A55
	heldOutStream    = 0x4E1D0
)

// promptSet is one group of the adherence protocol: prompts that state a
// finding (or, for "normal", that state none), each sampled with several
// seeds.
type promptSet struct {
	Name    string   `json:"name"`
	Finding string   `json:"finding"` // classify.Findings name; "" for the normal set
	Prompts []string `json:"prompts"`
}

// adherenceSets are the prompt groups: four phrasings per finding in the
// reports' own style (phantom.MakeReport) and a normal group that negates
// every finding.
var adherenceSets = []promptSet{
	{"effusion left", "effusion left", []string{"Large left pleural effusion.", "Moderate left pleural effusion obscuring the left hemidiaphragm.",
		"There is a moderate-sized left pleural effusion. No pneumothorax.", "Small left pleural effusion."}},
	{"effusion right", "effusion right", []string{"Large right pleural effusion.", "Moderate right pleural effusion obscuring the right hemidiaphragm.",
		"There is a moderate-sized right pleural effusion. No pneumothorax.", "Small right pleural effusion."}},
	{"cardiomegaly", "cardiomegaly", []string{"Cardiomegaly.", "Moderate cardiomegaly.", "The heart is enlarged. No pleural effusion.", "Marked cardiomegaly."}},
	{"pneumothorax left", "pneumothorax left", []string{"Large left pneumothorax.", "Moderate left pneumothorax with a visible visceral pleural line.",
		"There is a moderate-sized left-sided pneumothorax.", "Small left apical pneumothorax."}},
	{"pneumothorax right", "pneumothorax right", []string{"Large right pneumothorax.", "Moderate right pneumothorax with a visible visceral pleural line.",
		"There is a moderate-sized right-sided pneumothorax.", "Small right apical pneumothorax."}},
	{"consolidation", "consolidation", []string{"Right lower lobe consolidation.", "Consolidation in the left upper lobe.",
		"Airspace consolidation in the right middle lobe with air bronchograms.", "Focal consolidation in the left lower lobe."}},
	{"lung lesion", "lung lesion", []string{"4.5 cm mass in the right upper lobe.", "Left lower lobe mass measuring 5.0 cm.",
		"2.0 cm nodule in the left upper lobe.", "Round 15 mm nodule projecting over the right lower lobe."}},
	{"atelectasis", "atelectasis", []string{"Plate-like atelectasis at the left lung base with volume loss.", "Right basilar linear atelectasis.",
		"Linear atelectasis at the right base with elevation of the right hemidiaphragm.", "Discoid atelectasis in the left lower zone."}},
	{"support devices", "support devices", []string{"Endotracheal tube tip 4 cm above the carina.",
		"Right internal jugular central venous catheter with tip at the cavoatrial junction.",
		"Left-sided dual-chamber pacemaker with leads in standard position.", "Dual-lead pacemaker in place. No pneumothorax."}},
	{"normal", "", []string{"No acute cardiopulmonary process.", "Normal chest radiograph.",
		"No acute cardiopulmonary process. No pleural effusion or pneumothorax.", "The lungs are clear. Heart size is normal."}},
}

// lateralPairs are the findings whose side the adherence protocol checks:
// for images of the left set the classifier's left output must exceed its
// right one, and the other way round.
var lateralPairs = [][2]string{{"effusion left", "effusion right"}, {"pneumothorax left", "pneumothorax right"}}

// classifierPath is the trained classifier's weights under -out.
func (o *options) classifierPath() string { return o.path("classifier", "classifier.safetensors") }

// stageClassifier trains the findings classifier on phantoms drawn from
// their own seed stream (disjoint from the diffusion model's training set)
// and writes its weights and held-out report under OUT/classifier.
func (o *options) stageClassifier(ctx context.Context) error {
	if _, err := o.checkRecipe(); err != nil {
		return err
	}
	to := classify.DefaultTrainOptions()
	to.Seed = mix64(o.Seed, classifierStream)
	to.FindingsRate = o.Rate
	to.RenderSize = o.Res
	to.Workers = o.Workers
	to.Log = o.stderr
	if o.ClassifierSteps > 0 {
		to.Steps = o.ClassifierSteps
	}
	if o.ClassifierTrain > 0 {
		to.Train = o.ClassifierTrain
	}
	if o.ClassifierVal > 0 {
		to.Val = o.ClassifierVal
	}
	start := time.Now()
	m, rep, err := classify.Train(ctx, to)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	if err := os.MkdirAll(o.path("classifier"), 0o755); err != nil {
		return err
	}
	if err := classify.Save(o.classifierPath(), m); err != nil {
		return err
	}
	js, err := json.MarshalIndent(map[string]any{"options": trainOptionsJSON(to), "seconds": time.Since(start).Seconds(), "report": rep}, "", "  ")
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(o.path("classifier", "report.json"), append(js, '\n')); err != nil {
		return err
	}
	md := rep.Markdown()
	if err := pipeline.WriteFileAtomic(o.path("classifier", "report.md"), []byte(md)); err != nil {
		return err
	}
	o.logf("classifier: held-out validation (%d phantoms) in %s:\n%s", to.Val, time.Since(start).Round(time.Second), md)
	return nil
}

// trainOptionsJSON is the classifier's options without the log writer.
func trainOptionsJSON(to classify.TrainOptions) map[string]any {
	return map[string]any{"seed": to.Seed, "train": to.Train, "val": to.Val, "steps": to.Steps, "batch": to.Batch,
		"lr": to.LR, "findings_rate": to.FindingsRate, "render_size": to.RenderSize}
}

// findingIndex returns the classifier output called name.
func findingIndex(name string) (int, error) {
	for i, f := range classify.Findings {
		if f.Name == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("the classifier has no output %q", name)
}

// generated is one generated image with the classifier's view of it.
type generated struct {
	set, prompt int
	k           int // the image's index among its prompt's images
	img         *image.NRGBA
	probs, feat []float32
}

// proofResult is OUT/proof/proof.json.
type proofResult struct {
	Model      string             `json:"model"`
	Sampler    map[string]any     `json:"sampler"`
	PerPrompt  int                `json:"images_per_prompt"`
	Adherence  []findingAdherence `json:"adherence"`
	Laterality []lateralityResult `json:"laterality"`
	Fidelity   fidelityResult     `json:"fidelity"`
	Diversity  diversityResult    `json:"diversity"`
	Seconds    float64            `json:"seconds"`
	ImagesPerS float64            `json:"images_per_second"`
}

// findingAdherence is one row of the adherence table.
type findingAdherence struct {
	Finding string `json:"finding"`
	// Stated is the detection rate (probability >= 0.5) on the images of
	// prompts that state the finding; Normal on the normal set; Others on
	// the sets of the other findings (prompts that omit this one; for a
	// sided finding this includes the other side's set).
	Stated, Normal, Others float64
	// NegatedOrOmitted pools Normal and Others.
	NegatedOrOmitted float64 `json:"negated_or_omitted"`
	NStated, NNeg    int
	// AUROC separates stated from negated/omitted images by the
	// classifier's probability.
	AUROC     float64   `json:"auroc"`
	PerPrompt []float64 `json:"per_prompt_stated"`
	Pass      bool      `json:"pass"` // Stated >= 0.8 and NegatedOrOmitted <= 0.2
}

// lateralityResult is the fraction of a sided set whose stated side the
// classifier scores above the other side.
type lateralityResult struct {
	Finding string  `json:"finding"`
	Left    float64 `json:"left_set_correct"`
	Right   float64 `json:"right_set_correct"`
	Both    float64 `json:"both_correct"`
	Pass    bool    `json:"pass"` // Both >= 0.8
}

// fidelityResult compares generated with real held-out phantoms on the
// classifier's features.
type fidelityResult struct {
	N int `json:"n"`
	// Generated is the Frechet distance between images generated from N
	// held-out phantoms' reports and those N phantoms; Floor is between two
	// disjoint sets of N real held-out phantoms.
	Generated, Floor float64
}

// diversityResult is MS-SSIM between images of one prompt (RoentGen's
// protocol: mean over prompts of the mean over the 6 pairs of 4 images;
// lower is more diverse) beside the same for groups of 4 real phantoms.
type diversityResult struct {
	// Skipped says why MS-SSIM was not computed (images too small for its
	// five scales).
	Skipped   string  `json:"skipped,omitempty"`
	Prompts   int     `json:"prompts"`
	Generated float64 `json:"generated"`
	Real      float64 `json:"real_groups_of_4"`
}

// minMSSSIMSize is the side an image must exceed for MS-SSIM's 5 scales of
// an 11-tap window (pytorch_msssim's condition: (11-1) * 2^4 = 160).
const minMSSSIMSize = 160

// stageProof measures the exported model with the classifier: adherence
// per finding, laterality, Frechet distance on the classifier's features
// and MS-SSIM diversity, writing OUT/proof/proof.json, proof.md and
// grid.png.
func (o *options) stageProof(ctx context.Context) error {
	if _, err := o.checkRecipe(); err != nil {
		return err
	}
	modelDir := o.path("model")
	if !exists(filepath.Join(modelDir, "model_index.json")) {
		return errors.New(modelDir + " does not exist; run stage export first")
	}
	if !exists(o.classifierPath()) {
		return errors.New(o.classifierPath() + " does not exist; run stage classifier first")
	}
	clf, err := classify.Load(o.classifierPath())
	if err != nil {
		return err
	}
	p, err := pipeline.Load(modelDir, pipeline.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	start := time.Now()
	nGen := 0
	gen := func(prompts []string, n int, seed uint64) ([]*image.NRGBA, error) {
		res, err := p.Txt2Img(ctx, pipeline.Request{Prompts: prompts, NumImages: n, Seed: seed, PerImageSeeds: true,
			Height: o.Res, Width: o.Res, Steps: o.ProofSteps, Guidance: o.ProofGuidance, BatchSize: 8})
		if err != nil {
			if ctx.Err() != nil {
				return nil, errInterrupted
			}
			return nil, err
		}
		nGen += len(res.Images)
		return res.Images, nil
	}
	classifyImages := clf.PredictImages

	// Adherence: every set's prompts, PerPrompt seeds each.
	per := (o.ProofN + 3) / 4
	var all []generated
	for si, set := range adherenceSets {
		imgs, err := gen(set.Prompts, per, uint64(1000*(si+1)))
		if err != nil {
			return err
		}
		ims := make([]image.Image, len(imgs))
		for i := range imgs {
			ims[i] = imgs[i]
		}
		probs, feats, err := classifyImages(ims)
		if err != nil {
			return err
		}
		for i := range imgs {
			all = append(all, generated{set: si, prompt: i / per, k: i % per, img: imgs[i], probs: probs[i], feat: feats[i]})
		}
		o.logf("proof: %-18s %d images (%.1f images/s)", set.Name, len(imgs), float64(nGen)/time.Since(start).Seconds())
	}
	res := proofResult{Model: modelDir, PerPrompt: per,
		Sampler: map[string]any{"scheduler": p.SchedulerName, "steps": o.ProofSteps, "guidance": o.ProofGuidance, "size": o.Res}}
	for si, set := range adherenceSets {
		if set.Finding == "" {
			continue
		}
		fi, err := findingIndex(set.Finding)
		if err != nil {
			return err
		}
		row := findingAdherence{Finding: set.Finding, PerPrompt: make([]float64, len(set.Prompts))}
		var pos, neg []float64
		var nNormal, dNormal, nOther, dOther, nStated float64
		perPromptN := make([]float64, len(set.Prompts))
		for _, g := range all {
			s := float64(g.probs[fi])
			hit := 0.0
			if s >= 0.5 {
				hit = 1
			}
			switch {
			case g.set == si:
				pos = append(pos, s)
				nStated += hit
				row.PerPrompt[g.prompt] += hit
				perPromptN[g.prompt]++
			case adherenceSets[g.set].Finding == "":
				neg = append(neg, s)
				nNormal += hit
				dNormal++
			default:
				neg = append(neg, s)
				nOther += hit
				dOther++
			}
		}
		for i := range row.PerPrompt {
			row.PerPrompt[i] /= perPromptN[i]
		}
		row.NStated, row.NNeg = len(pos), len(neg)
		row.Stated = nStated / float64(len(pos))
		row.Normal, row.Others = nNormal/dNormal, nOther/dOther
		row.NegatedOrOmitted = (nNormal + nOther) / (dNormal + dOther)
		if row.AUROC, err = metrics.AUROC(pos, neg); err != nil {
			return err
		}
		row.Pass = row.Stated >= 0.8 && row.NegatedOrOmitted <= 0.2
		res.Adherence = append(res.Adherence, row)
	}
	for _, lp := range lateralPairs {
		li, _ := findingIndex(lp[0])
		ri, _ := findingIndex(lp[1])
		var lc, ln, rc, rn float64
		for _, g := range all {
			switch adherenceSets[g.set].Finding {
			case lp[0]:
				ln++
				if g.probs[li] > g.probs[ri] {
					lc++
				}
			case lp[1]:
				rn++
				if g.probs[ri] > g.probs[li] {
					rc++
				}
			}
		}
		lr := lateralityResult{Finding: strings.TrimSuffix(lp[0], " left"), Left: lc / ln, Right: rc / rn, Both: (lc + rc) / (ln + rn)}
		lr.Pass = lr.Both >= 0.8
		res.Laterality = append(res.Laterality, lr)
	}

	// Diversity: MS-SSIM among the first 4 images of every prompt.
	var divSum float64
	diversity := o.Res > minMSSSIMSize
	if !diversity {
		res.Diversity.Skipped = fmt.Sprintf("%dx%d images are too small for MS-SSIM's 5 scales (more than %d pixels a side)", o.Res, o.Res, minMSSSIMSize)
	}
	for si, set := range adherenceSets {
		if !diversity {
			break
		}
		for pi := range set.Prompts {
			var group []metrics.Gray
			for _, g := range all {
				if g.set == si && g.prompt == pi && len(group) < 4 {
					group = append(group, grayOf(g.img))
				}
			}
			d, err := metrics.PromptDiversity(group)
			if err != nil {
				return err
			}
			divSum += d
			res.Diversity.Prompts++
		}
	}
	if diversity {
		res.Diversity.Generated = divSum / float64(res.Diversity.Prompts)
	}

	// Fidelity: held-out phantoms' reports as prompts, against the phantoms;
	// the floor is two disjoint real sets.
	n := o.ProofFIDN
	realA, reports, err := o.heldOut(0, n)
	if err != nil {
		return err
	}
	realB, _, err := o.heldOut(n, n)
	if err != nil {
		return err
	}
	var genImgs []image.Image
	for i := 0; i < n; i += 16 {
		imgs, err := gen(reports[i:min(i+16, n)], 1, uint64(500000+i))
		if err != nil {
			return err
		}
		for _, im := range imgs {
			genImgs = append(genImgs, im)
		}
		o.logf("proof: fidelity %d/%d generated", len(genImgs), n)
	}
	statsOf := func(imgs []image.Image) (*metrics.Stats, error) {
		_, feats, err := classifyImages(imgs)
		if err != nil {
			return nil, err
		}
		acc := metrics.NewAccumulator(len(feats[0]))
		for _, f := range feats {
			acc.AddBatch32(f)
		}
		return acc.Stats()
	}
	sA, err := statsOf(realA)
	if err != nil {
		return err
	}
	sB, err := statsOf(realB)
	if err != nil {
		return err
	}
	sG, err := statsOf(genImgs)
	if err != nil {
		return err
	}
	res.Fidelity.N = n
	if res.Fidelity.Generated, err = metrics.FrechetDistance(sG, sA); err != nil {
		return err
	}
	if res.Fidelity.Floor, err = metrics.FrechetDistance(sB, sA); err != nil {
		return err
	}
	var realDiv float64
	groups := 0
	for i := 0; diversity && i+4 <= len(realA) && groups < res.Diversity.Prompts; i += 4 {
		group := []metrics.Gray{grayOf(realA[i]), grayOf(realA[i+1]), grayOf(realA[i+2]), grayOf(realA[i+3])}
		d, err := metrics.PromptDiversity(group)
		if err != nil {
			return err
		}
		realDiv += d
		groups++
	}
	if groups > 0 {
		res.Diversity.Real = realDiv / float64(groups)
	}
	res.Seconds = time.Since(start).Seconds()
	res.ImagesPerS = float64(nGen) / res.Seconds

	if err := os.MkdirAll(o.path("proof"), 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(o.path("proof", "proof.json"), append(js, '\n')); err != nil {
		return err
	}
	md := res.markdown()
	if err := pipeline.WriteFileAtomic(o.path("proof", "proof.md"), []byte(md)); err != nil {
		return err
	}
	if err := writeGrid(o.path("proof", "grid.png"), all); err != nil {
		return err
	}
	o.logf("proof: %d images in %s\n%s", nGen, time.Since(start).Round(time.Second), md)
	return nil
}

// heldOut renders n held-out phantoms (indices from, from+1, ... of their
// own seed stream) and returns them as gray images with their reports.
func (o *options) heldOut(from, n int) ([]image.Image, []string, error) {
	imgs := make([]image.Image, n)
	reports := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pp := phantom.Random(phantom.DatasetSeed(mix64(o.Seed, heldOutStream), from+i), phantom.Options{FindingsRate: o.Rate})
				im, err := phantom.Render(pp, o.Res, o.Res)
				if err != nil {
					errs[i] = err
					continue
				}
				imgs[i] = im.Gray()
				reports[i] = phantom.MakeReport(pp).Text
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return imgs, reports, errors.Join(errs...)
}

// grayOf converts an image to MS-SSIM's gray values in [0, 1] (luminance).
func grayOf(im image.Image) metrics.Gray {
	b := im.Bounds()
	g := metrics.NewGray(b.Dx(), b.Dy())
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, gg, bb, _ := im.At(b.Min.X+x, b.Min.Y+y).RGBA()
			g.Pix[y*g.W+x] = (0.299*float64(r) + 0.587*float64(gg) + 0.114*float64(bb)) / 65535
		}
	}
	return g
}

// writeGrid writes the first image of every prompt, one row per set.
func writeGrid(path string, all []generated) error {
	if len(all) == 0 {
		return errors.New("no images")
	}
	tile := all[0].img.Bounds().Dx()
	const gap = 4
	cols := len(adherenceSets[0].Prompts)
	rows := len(adherenceSets)
	out := image.NewGray(image.Rect(0, 0, cols*tile+(cols-1)*gap, rows*tile+(rows-1)*gap))
	for _, g := range all {
		if g.prompt >= cols || g.k != 0 {
			continue
		}
		x0, y0 := g.prompt*(tile+gap), g.set*(tile+gap)
		draw.Draw(out, image.Rect(x0, y0, x0+tile, y0+tile), g.img, g.img.Bounds().Min, draw.Src)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(path, buf.Bytes())
}

// markdown renders the proof's tables.
func (r *proofResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Sampler: %v, %v steps, guidance %v, %vx%v; %d images per prompt, 4 prompts per set.\n\n",
		r.Sampler["scheduler"], r.Sampler["steps"], r.Sampler["guidance"], r.Sampler["size"], r.Sampler["size"], r.PerPrompt)
	b.WriteString("| finding | detected, prompts stating it | normal prompts | other findings' prompts | negated or omitted (pooled) | AUROC | per prompt (stated) | target met |\n|---|---|---|---|---|---|---|---|\n")
	for _, a := range r.Adherence {
		pp := make([]string, len(a.PerPrompt))
		for i, v := range a.PerPrompt {
			pp[i] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(&b, "| %s | %.2f (n=%d) | %.2f | %.2f | %.2f (n=%d) | %.3f | %s | %s |\n", a.Finding, a.Stated, a.NStated, a.Normal,
			a.Others, a.NegatedOrOmitted, a.NNeg, a.AUROC, strings.Join(pp, " / "), yesNo(a.Pass))
	}
	b.WriteString("\n| laterality | left prompts: left > right | right prompts: right > left | both | target met |\n|---|---|---|---|---|\n")
	for _, l := range r.Laterality {
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %s |\n", l.Finding, l.Left, l.Right, l.Both, yesNo(l.Pass))
	}
	fmt.Fprintf(&b, "\nFrechet distance on the classifier's features (n=%d): generated from held-out reports vs those phantoms %.3f; two real held-out sets (floor) %.3f.\n",
		r.Fidelity.N, r.Fidelity.Generated, r.Fidelity.Floor)
	if r.Diversity.Skipped != "" {
		fmt.Fprintf(&b, "MS-SSIM diversity skipped: %s.\n", r.Diversity.Skipped)
	} else {
		fmt.Fprintf(&b, "MS-SSIM within a prompt (4 images, 6 pairs, mean over %d prompts; lower is more diverse): generated %.3f; groups of 4 real held-out phantoms %.3f.\n",
			r.Diversity.Prompts, r.Diversity.Generated, r.Diversity.Real)
	}
	fmt.Fprintf(&b, "Time: %.0f s (%.2f images/s including classification).\n", r.Seconds, r.ImagesPerS)
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
