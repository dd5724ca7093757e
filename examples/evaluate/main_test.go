package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/metrics/features"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/phantom"
	"github.com/roentgo/roentgo/tensor"
)

const testSize = 256

// writePNG writes a gray image.
func writePNG(t testing.TB, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// phantomSet renders n phantoms (seeds from seed) at size x size.
func phantomSet(t testing.TB, seed uint64, n, size int) ([]*image.Gray, []phantom.Report) {
	t.Helper()
	ims := make([]*image.Gray, n)
	reps := make([]phantom.Report, n)
	for i := range ims {
		p := phantom.Random(phantom.DatasetSeed(seed, i), phantom.Options{FindingsRate: 0.6})
		im, err := phantom.Render(p, size, size)
		if err != nil {
			t.Fatal(err)
		}
		ims[i] = im.Gray()
		reps[i] = phantom.MakeReport(p)
	}
	return ims, reps
}

// writeFolder writes images as 00000.png ... under dir.
func writeFolder(t testing.TB, dir string, ims []*image.Gray) {
	for i, im := range ims {
		writePNG(t, filepath.Join(dir, fmt.Sprintf("%05d.png", i)), im)
	}
}

// writeGenerated writes images as a generate output folder: gray/ID_K.png in
// groups of per images (one prompt each), a manifest.jsonl with the
// reports' CheXpert labels.
func writeGenerated(t testing.TB, dir string, ims []*image.Gray, reps []phantom.Report, per int) {
	var man bytes.Buffer
	for i, im := range ims {
		id, k := fmt.Sprintf("p%03d", i/per), i%per
		key := fmt.Sprintf("%s_%d", id, k)
		rel := "gray/" + key + ".png"
		writePNG(t, filepath.Join(dir, rel), im)
		labels := map[string]string{}
		g := (i / per) * per // the group's report: its prompt
		for o := phantom.Observation(0); o < phantom.NumObservations; o++ {
			labels[o.String()] = reps[g].Labels[o].CSV()
		}
		line, _ := json.Marshal(map[string]any{"key": key, "index": i, "id": id, "k": k,
			"files": []map[string]string{{"format": "gray", "path": rel}}, "prompt": reps[g].Text, "labels": labels})
		man.Write(append(line, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.jsonl"), man.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runEval runs the program and decodes evaluation.json.
func runEval(t testing.TB, args ...string) (*report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := func(string) (string, bool) { return "", false }
	if code := Main(context.Background(), append(args, "-quiet"), env, &stdout, &stderr); code != 0 {
		t.Fatalf("evaluate %q: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
	var out string
	for i, a := range args {
		if a == "-out" {
			out = args[i+1]
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "evaluation.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r, stdout.String()
}

// runFail runs the program expecting failure and returns its stderr.
func runFail(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := func(string) (string, bool) { return "", false }
	if code := Main(context.Background(), append(args, "-quiet"), env, &stdout, &stderr); code == 0 {
		t.Fatalf("evaluate %q succeeded", args)
	}
	return stderr.String()
}

func TestPixelsIdenticalAndUnrelated(t *testing.T) {
	dir := t.TempDir()
	ims, reps := phantomSet(t, 1, 16, testSize)
	realDir, sameDir := filepath.Join(dir, "real"), filepath.Join(dir, "same")
	writeFolder(t, realDir, ims)
	writeGenerated(t, sameDir, ims, reps, 4)

	r, summary := runEval(t, "-real", realDir, "-gen", sameDir, "-out", filepath.Join(dir, "out1"),
		"-features", "pixels", "-size", "256", "-kid-subsets", "10")
	if r.Counts != (counts{Real: 16, Generated: 16, Groups: 4}) {
		t.Errorf("counts %+v", r.Counts)
	}
	fid := r.FID["pixels"]
	if fid == nil || fid.Dim != 256 {
		t.Fatalf("pixels FID %+v", fid)
	}
	if math.Abs(float64(fid.FID)) > 1e-5 {
		t.Errorf("FID of a set with itself = %g, want ~0", float64(fid.FID))
	}
	// The unbiased MMD² of a sample with itself is (2/m²)(Σ_{i≠j}k_ij/(m-1) -
	// Σ_i k_ii) <= 0 (Cauchy–Schwarz for the kernel), slightly negative.
	if k := r.KID["pixels"]; k == nil || float64(k.KID) > 1e-12 || k.SubsetSize != 16 {
		t.Errorf("KID of a set with itself %+v", k)
	}
	for _, space := range []string{"pixel_correlation", "pixels"} {
		m := r.Memorization[space]
		if m == nil || float64(m.Fraction) != 1 || m.Above != 16 || len(m.Closest) != 8 || m.Sheet == "" {
			t.Fatalf("%s memorisation %+v", space, m)
		}
		// The real images are distinct: the leave-one-out baseline is below 1.
		if b := m.RealBaseline; b == nil || !(b.Max < 0.9999) || space == "pixel_correlation" && b.Above != 0 {
			t.Errorf("%s real baseline %+v", space, b)
		}
		if _, err := os.Stat(filepath.Join(dir, "out1", m.Sheet)); err != nil {
			t.Error(err)
		}
	}
	// Each generated image's nearest real image is itself.
	for i, im := range r.Images {
		nb := im.Nearest["pixel_correlation"]
		if len(nb) != 3 || nb[0].Real != fmt.Sprintf("%05d.png", i) || float64(nb[0].Similarity) < 0.999999 {
			t.Fatalf("image %d (%s) nearest %+v", i, im.File, nb)
		}
		if im.Group != fmt.Sprintf("p%03d", i/4) || im.Prompt == "" {
			t.Fatalf("image %d group %q prompt %q", i, im.Group, im.Prompt)
		}
	}
	d := r.Diversity
	if d == nil || d.Groups != 4 || d.GroupSize != 4 || len(d.PerGroup) != 4 || !(d.MSSSIM > 0 && d.MSSSIM < 1) {
		t.Fatalf("diversity %+v", d)
	}
	if r.Adherence != nil {
		t.Error("adherence without a classifier")
	}
	if !strings.Contains(summary, "FID:") || !strings.Contains(summary, "Diversity:") {
		t.Errorf("summary:\n%s", summary)
	}
	checkReport(t, filepath.Join(dir, "out1"))

	// Another draw of phantoms: larger FID; noise images: much larger, and
	// nothing memorised.
	other, _ := phantomSet(t, 2, 16, testSize)
	otherDir := filepath.Join(dir, "other")
	writeFolder(t, otherDir, other)
	r2, _ := runEval(t, "-real", realDir, "-gen", otherDir, "-out", filepath.Join(dir, "out2"),
		"-features", "pixels", "-size", "256", "-kid-subsets", "10")
	// pytorch-fid's sqrtm path gives the same distance (to 1e-5: with 16
	// images in 256 dimensions the covariances are singular, where sqrtm
	// loses about half the digits).
	r2s, _ := runEval(t, "-real", realDir, "-gen", otherDir, "-out", filepath.Join(dir, "out2s"),
		"-features", "pixels", "-size", "256", "-kid-subsets", "10", "-fid-sqrtm", "-diversity=false")
	if f := r2s.FID["pixels"]; f.Method != "sqrtm" || r2.FID["pixels"].Method != "symmetric" ||
		math.Abs(float64(f.FID-r2.FID["pixels"].FID)) > 1e-5*float64(f.FID) || r2s.Diversity != nil {
		t.Errorf("sqrtm FID %+v, symmetric %+v", f, r2.FID["pixels"])
	}
	rng := rand.New(rand.NewPCG(5, 6))
	noiseDir := filepath.Join(dir, "noise")
	for i := 0; i < 16; i++ {
		g := image.NewGray(image.Rect(0, 0, testSize, testSize))
		for j := range g.Pix {
			g.Pix[j] = uint8(rng.IntN(256))
		}
		writePNG(t, filepath.Join(noiseDir, fmt.Sprintf("n%02d.png", i)), g)
	}
	r3, _ := runEval(t, "-real", realDir, "-gen", noiseDir, "-out", filepath.Join(dir, "out3"),
		"-features", "pixels", "-size", "256", "-kid-subsets", "10")
	f2, f3 := float64(r2.FID["pixels"].FID), float64(r3.FID["pixels"].FID)
	t.Logf("pixels FID: same 0, other phantoms %.4g, noise %.4g; KID %.4g, %.4g", f2, f3, float64(r2.KID["pixels"].KID), float64(r3.KID["pixels"].KID))
	if !(f2 > 1e-3 && f3 > 10*f2) || !(r3.KID["pixels"].KID > r2.KID["pixels"].KID) {
		t.Errorf("FID other phantoms %g, noise %g: want 0 < other << noise", f2, f3)
	}
	if m := r3.Memorization["pixel_correlation"]; m.Above != 0 || float64(m.Max) > 0.5 {
		t.Errorf("noise memorisation %+v", m)
	}
	// Without a manifest, groups come from the file names (n00, n01, ...: one
	// image each), so no group has two images.
	if r3.Diversity == nil || r3.Diversity.Groups != 0 || r3.Diversity.Skipped != 16 || r3.Settings.Grouping != "file name (ID_K)" {
		t.Errorf("diversity without groups %+v", r3.Diversity)
	}
}

// smallModels makes the loaders build the reduced random-weight models of
// metrics/features/testdata (the weight flags then only need to be set).
func smallModels(t testing.TB) {
	td := filepath.Join("..", "..", "metrics", "features", "testdata")
	open := func(name string) *nn.SafetensorsSource {
		s, err := nn.OpenSafetensors(filepath.Join(td, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	li, lx, lc := loadInception, loadXRV, loadCLIP
	t.Cleanup(func() { loadInception, loadXRV, loadCLIP = li, lx, lc })
	loadInception = func(string) (*features.Inception, error) {
		m, _, err := nn.Build(open("inception_d8.safetensors"), features.InceptionConfig{WidthDiv: 8}, tensor.F32, features.NewInception)
		return m, err
	}
	loadXRV = func(string) (*features.DenseNet, error) {
		c := features.DenseNetConfig{GrowthRate: 4, BlockConfig: []int{6, 12, 24, 16}, NumInitFeatures: 8, BNSize: 2, NumClasses: 18, InChannels: 1}
		m, _, err := nn.Build(open("densenet_small.safetensors"), c, tensor.F32, features.NewDenseNet)
		return m, err
	}
	loadCLIP = func(string) (*features.CLIPVision, error) {
		c := features.CLIPVisionConfig{HiddenSize: 32, IntermediateSize: 128, NumHiddenLayers: 2, NumAttentionHeads: 4,
			PatchSize: 16, ImageSize: 64, ProjectionDim: 16, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
		m, _, err := nn.Build(open("clip_vision_small.safetensors"), c, tensor.F32, features.NewCLIPVision)
		return m, err
	}
}

func TestSmallModelsAdherenceCache(t *testing.T) {
	smallModels(t)
	dir := t.TempDir()
	ims, reps := phantomSet(t, 3, 12, testSize)
	gen, greps := phantomSet(t, 4, 12, testSize)
	realDir, genDir, cacheDir := filepath.Join(dir, "real"), filepath.Join(dir, "gen"), filepath.Join(dir, "cache")
	writeFolder(t, realDir, ims)
	_ = reps
	writeGenerated(t, genDir, gen, greps, 4)
	args := []string{"-real", realDir, "-gen", genDir, "-size", "256", "-kid-subsets", "5", "-batch", "5",
		"-inception", "inception.safetensors", "-xrv", "xrv.safetensors", "-clip", "clip.safetensors", "-cache", cacheDir}
	r, summary := runEval(t, append(args, "-out", filepath.Join(dir, "out1"))...)
	for name, dim := range map[string]int{"inception": 256, "xrv": 0, "clip": 16} {
		f := r.FID[name]
		if f == nil || !(f.FID > 0) || (dim > 0 && f.Dim != dim) || r.KID[name] == nil || r.Memorization[name] == nil {
			t.Fatalf("%s: FID %+v KID %+v", name, f, r.KID[name])
		}
	}
	a := r.Adherence
	if a == nil || a.Classifier != "xrv" || a.Threshold != 0.5 {
		t.Fatalf("adherence %+v", a)
	}
	// CheXpert's columns that XRV has (Pleural Effusion as Effusion); the
	// others (No Finding, Pleural Other, Support Devices) are unmatched.
	for _, f := range []string{"Effusion", "Cardiomegaly", "Atelectasis", "Pneumothorax", "Edema", "Consolidation",
		"Pneumonia", "Lung Opacity", "Lung Lesion", "Fracture", "Enlarged Cardiomediastinum"} {
		fr := a.Findings[f]
		if fr == nil || fr.Stated+fr.Negated+fr.Omitted+fr.Uncertain != 12 {
			t.Errorf("finding %s: %+v", f, fr)
		}
	}
	if strings.Join(a.Unmatched, ",") != "No Finding,Pleural Other,Support Devices" {
		t.Errorf("unmatched labels %q", a.Unmatched)
	}
	if len(r.Images[0].Scores) != 18 {
		t.Errorf("image scores %v", r.Images[0].Scores)
	}
	t.Logf("summary:\n%s", summary)
	if !strings.Contains(summary, "Adherence:") {
		t.Errorf("summary:\n%s", summary)
	}
	// The report shows every number, XRV's adherence included.
	doc, _ := checkReport(t, filepath.Join(dir, "out1"))
	if !strings.Contains(doc, "XRV DenseNet-121 (-xrv)") || !strings.Contains(doc, `data-key="/adherence/findings/Effusion/auroc"`) {
		t.Error("report.html lacks XRV's adherence")
	}
	for set, m := range r.Cache {
		for what, c := range m {
			if c.Hit {
				t.Errorf("first run: %s %s hit the cache", set, what)
			}
		}
	}
	// The second run reads everything from the cache (no decoding) and
	// gives the same numbers; the stats files are clean-fid's mu/sigma.
	r2, _ := runEval(t, append(args, "-out", filepath.Join(dir, "out2"))...)
	for set, m := range r2.Cache {
		for what, c := range m {
			if !c.Hit {
				t.Errorf("second run: %s %s missed the cache", set, what)
			}
		}
	}
	if len(r2.Cache["real"]) != 4 || len(r2.Cache["generated"]) != 5 {
		t.Errorf("cache entries %+v", r2.Cache)
	}
	for name := range r.FID {
		if math.Abs(float64(r.FID[name].FID-r2.FID[name].FID)) > 1e-9*math.Abs(float64(r.FID[name].FID)) || r.KID[name].KID != r2.KID[name].KID {
			t.Errorf("%s: FID %v then %v, KID %v then %v", name, r.FID[name].FID, r2.FID[name].FID, r.KID[name].KID, r2.KID[name].KID)
		}
	}
	if r.Diversity.MSSSIM != r2.Diversity.MSSSIM {
		t.Errorf("diversity %v then %v", r.Diversity.MSSSIM, r2.Diversity.MSSSIM)
	}
	if a, b := float64(r.Adherence.MeanAUROC), float64(r2.Adherence.MeanAUROC); a != b && !(math.IsNaN(a) && math.IsNaN(b)) {
		t.Errorf("mean AUROC %v then %v", a, b)
	}
	st, err := readStatsFile(r2.Cache["real"]["inception"].File)
	if err != nil || st != 256 {
		t.Errorf("cached stats: dim %d, %v", st, err)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	ims, reps := phantomSet(t, 1, 4, 64)
	realDir, genDir, empty := filepath.Join(dir, "real"), filepath.Join(dir, "gen"), filepath.Join(dir, "empty")
	writeFolder(t, realDir, ims)
	writeGenerated(t, genDir, ims, reps, 2)
	os.MkdirAll(empty, 0o755)
	out := filepath.Join(dir, "out")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-gen", genDir, "-out", out}, "-real is required"},
		{[]string{"-real", empty, "-gen", genDir, "-out", out, "-size", "64"}, "no images"},
		{[]string{"-real", realDir, "-gen", genDir, "-out", out, "-size", "60"}, "multiple of 8"},
		{[]string{"-real", realDir, "-gen", genDir, "-out", out, "-size", "64", "-features", "xrv"}, "-xrv FILE"},
		{[]string{"-real", realDir, "-gen", genDir, "-out", out, "-size", "64", "-features", "inception", "-inception", filepath.Join(dir, "nope.safetensors")}, "nope.safetensors do not exist"},
		{[]string{"-real", realDir, "-gen", genDir, "-out", out, "-size", "64", "-features", "pixels,bogus"}, "unknown feature space"},
		{[]string{"-real", realDir, "-gen", genDir, "-out", out, "-size", "64", "-format", "dcm16"}, "no file of format"},
	} {
		if got := runFail(t, c.args...); !strings.Contains(got, c.want) {
			t.Errorf("%q: error %q, want it to mention %q", c.args, got, c.want)
		}
	}
	// A file that is not an image names the file.
	os.WriteFile(filepath.Join(realDir, "broken.png"), []byte("not a png"), 0o644)
	if got := runFail(t, "-real", realDir, "-gen", genDir, "-out", out, "-size", "64"); !strings.Contains(got, "broken.png") {
		t.Errorf("broken image: %q", got)
	}
	os.Remove(filepath.Join(realDir, "broken.png"))
	// A label value that is not CheXpert's names the image and the column.
	smallModels(t)
	man, _ := os.ReadFile(filepath.Join(genDir, "manifest.jsonl"))
	os.WriteFile(filepath.Join(genDir, "manifest.jsonl"), bytes.Replace(man, []byte(`"Edema":"`), []byte(`"Edema":"maybe`), 1), 0o644)
	if got := runFail(t, "-real", realDir, "-gen", genDir, "-out", out, "-size", "64", "-features", "xrv", "-xrv", "x"); !strings.Contains(got, "Edema") || !strings.Contains(got, "maybe") {
		t.Errorf("bad label: %q", got)
	}
}

// Without weights the program still measures diversity and pixel
// memorisation, and says what it skipped; mixed sizes are resized.
func TestNoExtractorsMixedSizes(t *testing.T) {
	dir := t.TempDir()
	a, _ := phantomSet(t, 7, 3, 200)
	b, _ := phantomSet(t, 8, 3, 300)
	realDir := filepath.Join(dir, "real")
	writeFolder(t, realDir, append(a, b...))
	genDir := filepath.Join(dir, "gen")
	for i, im := range b {
		writePNG(t, filepath.Join(genDir, fmt.Sprintf("x_%d.png", i)), im)
	}
	r, _ := runEval(t, "-real", realDir, "-gen", genDir, "-out", filepath.Join(dir, "out"), "-size", "168")
	if len(r.FID) != 0 || r.Memorization["pixel_correlation"] == nil || len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "no feature extractor") {
		t.Fatalf("report %+v", r)
	}
	if r.Diversity == nil || r.Diversity.Groups != 1 || r.Diversity.PerGroup[0].Images != 3 {
		t.Errorf("diversity %+v", r.Diversity)
	}
	if m := r.Memorization["pixel_correlation"]; m.Above != 3 {
		t.Errorf("the generated images are copies of real ones: %+v", m)
	}
}

// With -prompts the program generates first (here the tiny random model,
// whose images are noise) and evaluates what it generated.
func TestGenerateFirst(t *testing.T) {
	dir := t.TempDir()
	ims, _ := phantomSet(t, 1, 4, 64)
	realDir := filepath.Join(dir, "real")
	writeFolder(t, realDir, ims)
	prompts := filepath.Join(dir, "prompts.csv")
	os.WriteFile(prompts, []byte("id,prompt,Pleural Effusion\na,left pleural effusion,1.0\nb,no effusion,0.0\n"), 0o644)
	genDir := filepath.Join(dir, "gen")
	r, _ := runEval(t, "-real", realDir, "-gen", genDir, "-out", filepath.Join(dir, "out"), "-prompts", prompts,
		"-per-prompt", "2", "-steps", "2", "-size", "64", "-features", "pixels", "-pixels-size", "4", "-model", "builtin:tiny-random")
	if r.Counts != (counts{Real: 4, Generated: 4, Groups: 2}) || r.Settings.Generation == nil || r.Settings.Generation.Model != "roentgo-demo (random weights)" {
		t.Fatalf("counts %+v, generation %+v", r.Counts, r.Settings.Generation)
	}
	if r.Images[2].File != "gray/b_0.png" || r.Images[2].Prompt != "no effusion" {
		t.Errorf("image 2: %+v", r.Images[2])
	}
	if got := runFail(t, "-real", realDir, "-gen", genDir, "-out", filepath.Join(dir, "out"), "-prompts", prompts); !strings.Contains(got, "already holds a manifest") {
		t.Errorf("regenerating into a used folder: %q", got)
	}
}
