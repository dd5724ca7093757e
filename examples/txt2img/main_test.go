package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/stretchr/testify/require"
)

var bin string // the built program

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "txt2img-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "txt2img")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goldenModel(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(testutil.Golden(t, "model/diffusers"))
	require.NoError(t, err)
	return abs
}

func runProg(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stderr.String()
}

func readPNG(t *testing.T, path string) (image.Image, map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	chunks, err := pipeline.ReadPNGText(data)
	require.NoError(t, err)
	m := map[string]string{}
	for _, c := range chunks {
		m[c.Key] = c.Value
	}
	return img, m
}

func TestGoldenModelRGBAndGray(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "a.png")
	code, stderr := runProg(t, "-model", model, "-prompt", "Small left-sided pleural effusion.", "-negative", "blurry",
		"-steps", "2", "-height", "32", "-width", "48", "-seed", "7", "-out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "it/s")     // progress bar
	require.Contains(t, stderr, "decoding") // summary
	img, meta := readPNG(t, out)
	require.Equal(t, image.Rect(0, 0, 48, 32), img.Bounds())
	_, isGray := img.(*image.Gray)
	require.False(t, isGray, "RGB without -gray")
	require.Equal(t, "Small left-sided pleural effusion.", meta["prompt"])
	require.Equal(t, "blurry", meta["negative_prompt"])
	require.Equal(t, "7", meta["seed"])
	require.Equal(t, "2", meta["steps"])
	require.Equal(t, "pndm", meta["scheduler"])
	require.Equal(t, "7.5", meta["guidance_scale"])
	require.Equal(t, "48x32", meta["size"])
	require.Regexp(t, "^[0-9a-f]{12}$", meta["model_hash"])

	// Gray, two images through a pattern, another scheduler.
	code, stderr = runProg(t, "-model", model, "-prompt", "x", "-steps", "2", "-height", "32", "-width", "32",
		"-gray", "-n", "2", "-scheduler", "ddim", "-q", "-out", filepath.Join(dir, "g-%d.png"))
	require.Equal(t, 0, code, stderr)
	for i := 0; i < 2; i++ {
		img, meta := readPNG(t, filepath.Join(dir, "g-"+string(rune('0'+i))+".png"))
		require.IsType(t, &image.Gray{}, img)
		require.Equal(t, image.Rect(0, 0, 32, 32), img.Bounds())
		require.Equal(t, "ddim", meta["scheduler"])
	}
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 3, "a.png, g-0.png, g-1.png and nothing else")
}

// Without -model the embedded phantom demo model runs, with its own step
// count and guidance unless given; builtin:tiny-random is the random tiny
// model; an unknown builtin: name is a usage error.
func TestBuiltinModels(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "demo.png")
	code, stderr := runProg(t, "-prompt", "small left-sided pleural effusion", "-steps", "2", "-height", "64", "-width", "64", "-out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "built-in demo model")
	require.Contains(t, stderr, "not a clinical one")
	img, meta := readPNG(t, out)
	require.Equal(t, image.Rect(0, 0, 64, 64), img.Bounds())
	require.Equal(t, "small left-sided pleural effusion", meta["prompt"])
	require.Equal(t, "roentgo-phantom-demo", meta["model"])
	require.Equal(t, "2", meta["steps"])
	require.Equal(t, "4", meta["guidance_scale"], "the demo model's guidance when -guidance is not given")

	out = filepath.Join(dir, "tiny.png")
	code, stderr = runProg(t, "-model", "builtin:tiny-random", "-prompt", "x", "-steps", "2", "-height", "64", "-width", "64", "-out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "noise")
	_, meta = readPNG(t, out)
	require.Equal(t, "roentgo-demo (random weights)", meta["model"])
	require.Equal(t, "7.5", meta["guidance_scale"], "the usual default guidance for other models")

	code, stderr = runProg(t, "-model", "builtin:sd15", "-prompt", "x", "-out", filepath.Join(dir, "no.png"))
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "unknown built-in model")
	require.NoFileExists(t, filepath.Join(dir, "no.png"))
}

// The golden model on the simulated accelerator (the GPU code path on the
// CPU) gives the CPU's image within a few 8-bit levels in F16, and says where
// it ran.
func TestSimDevice(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	args := []string{"-model", model, "-prompt", "small left-sided pleural effusion", "-steps", "3", "-height", "32", "-width", "32", "-seed", "3", "-q"}
	code, stderr := runProg(t, append(args, "-out", filepath.Join(dir, "cpu.png"))...)
	require.Equal(t, 0, code, stderr)
	code, stderr = runProg(t, append(args, "-device", "sim", "-compute", "f16", "-out", filepath.Join(dir, "sim.png"))...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "on sim:0")
	require.Contains(t, stderr, "F16")
	a, _ := readPNG(t, filepath.Join(dir, "cpu.png"))
	b, _ := readPNG(t, filepath.Join(dir, "sim.png"))
	ra, rb := a.(*image.RGBA), b.(*image.RGBA)
	worst := 0
	for i := range ra.Pix {
		d := int(ra.Pix[i]) - int(rb.Pix[i])
		worst = max(worst, d, -d)
	}
	t.Logf("largest 8-bit difference, F16 on sim vs CPU: %d", worst)
	require.LessOrEqual(t, worst, 3)
}

func TestBadInput(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "x.png")
	notPipeline := t.TempDir()
	common := []string{"-prompt", "x", "-steps", "2", "-q"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing model", []string{"-model", filepath.Join(dir, "nope"), "-out", out}, "does not exist"},
		{"not a pipeline", []string{"-model", notPipeline, "-out", out}, "missing model_index.json"},
		{"unknown scheduler", []string{"-model", model, "-scheduler", "fancy", "-out", out}, "unknown scheduler \"fancy\""},
		{"bad size", []string{"-model", model, "-height", "33", "-width", "32", "-out", out}, "multiples of 2"},
		{"negative size", []string{"-model", model, "-height", "-8", "-out", out}, "image size 0x-8 (width x height); expected positive multiples of the VAE's downsampling factor"},
		{"empty out", []string{"-model", model, "-out", ""}, "-out is empty"},
		{"unwritable dir", []string{"-model", model, "-out", filepath.Join(dir, "missing", "x.png")}, "missing: no such file or directory"},
		{"bad flag value", []string{"-model", model, "-steps", "many", "-out", out}, "invalid value"},
		{"bad dtype", []string{"-model", model, "-dtype", "f8", "-out", out}, "-dtype"},
		{"unknown device", []string{"-model", model, "-device", "tpu", "-out", out}, "unknown device \"tpu\""},
		{"bad compute dtype", []string{"-model", model, "-device", "sim", "-compute", "f8", "-out", out}, "-compute \"f8\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := runProg(t, append(append([]string{}, common...), c.args...)...)
			require.NotEqual(t, 0, code)
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			require.Len(t, lines, 1, "one line on stderr: %q", stderr)
			require.Contains(t, lines[0], c.want)
			require.True(t, strings.HasPrefix(lines[0], "txt2img: "), lines[0])
			entries, _ := os.ReadDir(dir)
			require.Empty(t, entries, "no output file left behind")
		})
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	code, stderr := runProg(t, "-h")
	require.Equal(t, 0, code)
	for _, f := range []string{"-model", "-prompt", "-negative", "-steps", "-guidance", "-scheduler", "-seed", "-n", "-batch", "-height", "-width", "-gray", "-out", "-dtype", "-tokenizer", "-config", "-prediction", "-eta", "-guidance-rescale", "-device", "-compute", "-q", "-lora", "-lora-unmerged", "-embedding"} {
		require.Regexp(t, "\n  "+f+"[ \t\n]", stderr, f)
	}
}

// -compute bf16 on the CPU multiplies in BF16 (on CPUs with AVX512_BF16): the
// golden model's image stays within a few 8-bit levels of the F32 one, and
// the summary says so.
func TestCPUBF16Compute(t *testing.T) {
	model := goldenModel(t)
	if !cpu.BF16ComputeSupported() {
		t.Skip("no AVX512_BF16 on this CPU")
	}
	dir := t.TempDir()
	args := []string{"-model", model, "-prompt", "small left-sided pleural effusion", "-steps", "3", "-height", "32", "-width", "32", "-seed", "3"}
	code, stderr := runProg(t, append(args, "-out", filepath.Join(dir, "f32.png"))...)
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stderr, "with BF16 products")
	code, stderr = runProg(t, append(args, "-compute", "bf16", "-out", filepath.Join(dir, "bf16.png"))...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "with BF16 products")
	a, _ := readPNG(t, filepath.Join(dir, "f32.png"))
	b, _ := readPNG(t, filepath.Join(dir, "bf16.png"))
	ra, rb := a.(*image.RGBA), b.(*image.RGBA)
	worst, differ := 0, 0
	for i := range ra.Pix {
		d := int(ra.Pix[i]) - int(rb.Pix[i])
		worst = max(worst, d, -d)
		if d != 0 {
			differ++
		}
	}
	t.Logf("BF16 vs F32 products: %d of %d 8-bit values differ, largest difference %d", differ, len(ra.Pix), worst)
	require.LessOrEqual(t, worst, 8)
	// A later run without the flag is back to F32 (the setting is process-wide).
	code, stderr = runProg(t, append(args, "-out", filepath.Join(dir, "f32b.png"))...)
	require.Equal(t, 0, code, stderr)
	c, _ := readPNG(t, filepath.Join(dir, "f32b.png"))
	require.Equal(t, ra.Pix, c.(*image.RGBA).Pix)
}
