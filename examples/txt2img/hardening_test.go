package main

// Tests of the defects of issue 15 (hardening) as a user meets them through
// the program.

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

// quick are the flags of a fast run of the golden tiny model.
func quick(model string) []string {
	return []string{"-model", model, "-steps", "2", "-height", "32", "-width", "32", "-q"}
}

// pixels returns an image's pixels as bytes (RGBA or gray).
func pixels(t *testing.T, img image.Image) []byte {
	t.Helper()
	switch m := img.(type) {
	case *image.RGBA:
		return m.Pix
	case *image.NRGBA:
		return m.Pix
	case *image.Gray:
		return m.Pix
	}
	t.Fatalf("unexpected image type %T", img)
	return nil
}

// Item 1: -out never replaces anything but a regular file; a symbolic link
// is written through.
func TestOutputKinds(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.png")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	toNull := filepath.Join(dir, "null.png")
	require.NoError(t, os.Symlink("/dev/null", toNull))
	for _, c := range []struct{ out, want string }{
		{"/dev/null", "character device"},
		{fifo, "named pipe"},
		{toNull, "links to /dev/null"},
		{dir, "a folder"},
	} {
		code, stderr := runProg(t, append(quick(model), "-prompt", "x", "-out", c.out)...)
		require.Equal(t, 1, code, stderr)
		require.Contains(t, stderr, c.want)
		require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	}
	st, err := os.Lstat("/dev/null")
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&os.ModeCharDevice, "/dev/null is still a device")
	st, err = os.Lstat(fifo)
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&os.ModeNamedPipe, "the FIFO is still a FIFO")

	// Through a link: the target gets the image, the link stays.
	target := filepath.Join(dir, "target.png")
	require.NoError(t, os.WriteFile(target, []byte("old"), 0o644))
	link := filepath.Join(dir, "latest.png")
	require.NoError(t, os.Symlink("target.png", link))
	code, stderr := runProg(t, append(quick(model), "-prompt", "x", "-out", link)...)
	require.Equal(t, 0, code, stderr)
	st, err = os.Lstat(link)
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&os.ModeSymlink, "the link is still a link")
	img, _ := readPNG(t, target)
	require.Equal(t, image.Rect(0, 0, 32, 32), img.Bounds())
}

// Item 15: -out x.jpg writes a JPEG, unknown extensions are refused, -out -
// writes the PNG to standard output (and no file named "-"), -seed below -1
// is refused.
func TestOutputFormats(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	jpg := filepath.Join(dir, "a.jpg")
	code, stderr := runProg(t, append(quick(model), "-prompt", "effusion", "-out", jpg)...)
	require.Equal(t, 0, code, stderr)
	data, err := os.ReadFile(jpg)
	require.NoError(t, err)
	img, err := jpeg.Decode(bytes.NewReader(data))
	require.NoError(t, err, "a .jpg output is a JPEG")
	require.Equal(t, image.Rect(0, 0, 32, 32), img.Bounds())
	comment, err := pipeline.ReadJPEGComment(data)
	require.NoError(t, err)
	require.Contains(t, comment, "effusion")
	require.Contains(t, comment, "Seed: 42")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-out", filepath.Join(dir, "a.bmp")}, `unknown image format ".bmp"`},
		{[]string{"-out", filepath.Join(dir, "a.png"), "-seed", "-2"}, "-seed -2; expected 0 or more, or -1"},
		{[]string{"-out", "-", "-n", "2"}, "-out - writes one image"},
		{[]string{"-out", filepath.Join(dir, "a.png"), "-long-prompt", "wrap"}, "-long-prompt \"wrap\""},
		{[]string{"-out", filepath.Join(dir, "a.png"), "-n", "3", "-index", "3"}, "-index 3; expected 0 to 2"},
	} {
		code, stderr := runProg(t, append(append(quick(model), "-prompt", "x"), c.args...)...)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, c.want)
	}

	cmd := exec.Command(bin, append(quick(model), "-prompt", "x", "-out", "-")...)
	cmd.Dir = dir
	var stdout, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &errb
	require.NoError(t, cmd.Run(), errb.String())
	img, err = png.Decode(bytes.NewReader(stdout.Bytes()))
	require.NoError(t, err, "standard output holds a PNG")
	require.Equal(t, image.Rect(0, 0, 32, 32), img.Bounds())
	require.NoFileExists(t, filepath.Join(dir, "-"))
	require.Contains(t, errb.String(), "wrote standard output")

	// -seed -1 picks a seed and says so.
	code, stderr = runProg(t, append(quick(model), "-prompt", "x", "-seed", "-1", "-out", filepath.Join(dir, "r.png"))...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "(picked from the clock)")
}

// Item 9: an absurd -n is refused before the disk is touched.
func TestCountCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "missing-folder", "x.png")
	code, stderr := runProg(t, "-prompt", "x", "-n", "1000000", "-out", out)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-n 1000000; expected 1 to 10000")
	entries, _ := os.ReadDir(dir)
	require.Empty(t, entries)
}

// Items 7, 8: an empty prompt and a truncated prompt are said; the chunked
// encoding reads every token and changes the image.
func TestPromptWarnings(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	code, stderr := runProg(t, append(quick(model), "-prompt", "", "-out", filepath.Join(dir, "e.png"))...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "warning: the prompt is empty")

	long := strings.Repeat("small left-sided pleural effusion with adjacent atelectasis. ", 12)
	code, stderr = runProg(t, append(quick(model), "-prompt", long, "-out", filepath.Join(dir, "t.png"))...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "warning: the prompt has")
	require.Contains(t, stderr, "-long-prompt chunk")
	code, stderr = runProg(t, append(quick(model), "-prompt", long, "-long-prompt", "chunk", "-out", filepath.Join(dir, "c.png"))...)
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stderr, "warning")
	a, _ := readPNG(t, filepath.Join(dir, "t.png"))
	b, _ := readPNG(t, filepath.Join(dir, "c.png"))
	require.NotEqual(t, pixels(t, a), pixels(t, b), "the chunked encoding conditions on the whole prompt")

	// A short prompt gives no warning.
	code, stderr = runProg(t, append(quick(model), "-prompt", "effusion", "-out", filepath.Join(dir, "s.png"))...)
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stderr, "warning")
	require.NotContains(t, stderr, "\r", "no progress bar redraws into a redirected stderr")
}

// Item 10: every image records what regenerates it alone, and those flags
// give the same pixels; per-image seeds follow A1111's seed+i.
func TestRegenerateOneImage(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	args := append(quick(model), "-prompt", "effusion", "-seed", "5")
	code, stderr := runProg(t, append(args, "-n", "3", "-out", filepath.Join(dir, "all-%d.png"))...)
	require.Equal(t, 0, code, stderr)
	all2, meta := readPNG(t, filepath.Join(dir, "all-2.png"))
	require.Equal(t, "-seed 5 -n 3 -index 2", meta["regenerate"])
	require.Equal(t, "2", meta["index"])
	require.Contains(t, meta["parameters"], "Batch pos: 2")
	require.Equal(t, filepath.Base(model), meta["model"], "the model's name, not its path")

	code, stderr = runProg(t, append(args, "-n", "3", "-index", "2", "-out", filepath.Join(dir, "one.png"))...)
	require.Equal(t, 0, code, stderr)
	one, meta1 := readPNG(t, filepath.Join(dir, "one.png"))
	require.Equal(t, pixels(t, all2), pixels(t, one), "-index 2 regenerates image 2")
	require.Equal(t, "2", meta1["index"])
	all0, _ := readPNG(t, filepath.Join(dir, "all-0.png"))
	require.NotEqual(t, pixels(t, all0), pixels(t, one))

	// Per-image seeds: image 2 of seed 5 is seed 7 alone.
	code, stderr = runProg(t, append(args, "-n", "3", "-per-image-seeds", "-out", filepath.Join(dir, "pi-%d.png"))...)
	require.Equal(t, 0, code, stderr)
	pi2, meta2 := readPNG(t, filepath.Join(dir, "pi-2.png"))
	require.Equal(t, "7", meta2["seed"])
	require.Equal(t, "-seed 7", meta2["regenerate"])
	require.Contains(t, meta2["parameters"], "Seed: 7,")
	code, stderr = runProg(t, append(quick(model), "-prompt", "effusion", "-seed", "7", "-out", filepath.Join(dir, "s7.png"))...)
	require.Equal(t, 0, code, stderr)
	s7, _ := readPNG(t, filepath.Join(dir, "s7.png"))
	require.Equal(t, pixels(t, s7), pixels(t, pi2))
}

// withNaNWeight copies the golden model into a temporary folder with one
// U-Net weight set to NaN.
func withNaNWeight(t *testing.T, model string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nan-model")
	require.NoError(t, os.CopyFS(dir, os.DirFS(model)))
	path := filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	var ts []safetensors.TensorInfo
	for _, name := range f.Names() {
		ti, _ := f.Get(name)
		ti.Data = append([]byte(nil), ti.Data...)
		if name == "conv_out.bias" {
			require.Equal(t, safetensors.DType("F32"), ti.DType)
			copy(ti.Data[:4], []byte{0x00, 0x00, 0xc0, 0x7f}) // NaN, little endian
		}
		ts = append(ts, ti)
	}
	f.Close()
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, safetensors.WriteFile(path, ts, nil))
	return dir
}

// Item 5: a run whose latents go NaN stops with an error naming the step
// and writes nothing; -allow-nonfinite keeps going.
func TestNonFinite(t *testing.T) {
	model := withNaNWeight(t, goldenModel(t))
	dir := t.TempDir()
	out := filepath.Join(dir, "nan.png")
	code, stderr := runProg(t, "-model", model, "-prompt", "x", "-steps", "3", "-height", "32", "-width", "32", "-q", "-out", out)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "step 1 of")
	require.Contains(t, stderr, "not finite")
	require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	require.NoFileExists(t, out)
	code, stderr = runProg(t, "-model", model, "-prompt", "x", "-steps", "3", "-height", "32", "-width", "32", "-q", "-allow-nonfinite", "-out", out)
	require.Equal(t, 0, code, stderr)
	require.FileExists(t, out)
}

// Item 11: Ctrl-C during a multi-batch run keeps the images already
// finished (each is written as soon as it is decoded).
func TestInterruptKeepsFinished(t *testing.T) {
	model := goldenModel(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-model", model, "-prompt", "x", "-steps", "150", "-height", "32", "-width", "32",
		"-n", "4", "-batch", "1", "-q", "-out", filepath.Join(dir, "x-%d.png"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	first := filepath.Join(dir, "x-0.png")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, err := os.Stat(first); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the first image never appeared: %s", stderr.String())
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	require.True(t, ok, "exit status: %v; %s", err, stderr.String())
	require.Equal(t, 130, ee.ExitCode(), stderr.String())
	require.Contains(t, stderr.String(), "interrupted; kept the")
	img, meta := readPNG(t, first)
	require.Equal(t, image.Rect(0, 0, 32, 32), img.Bounds())
	require.Equal(t, "0", meta["index"])
	require.NoFileExists(t, filepath.Join(dir, "x-3.png"), "the run stopped early")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		require.True(t, strings.HasSuffix(e.Name(), ".png") && strings.HasPrefix(e.Name(), "x-"), "left behind: %s", e.Name())
	}
}

// Item 13: an error names each piece of context once: the component, then
// the problem (with the file), without the packages it passed through.
func TestErrorsSayContextOnce(t *testing.T) {
	model := goldenModel(t)
	for _, c := range []struct {
		file, want string
	}{
		{"unet/diffusion_pytorch_model.safetensors", "txt2img: unet: header length"},
		{"vae/diffusion_pytorch_model.safetensors", "txt2img: vae: header length"},
		{"text_encoder/model.safetensors", "txt2img: text encoder: header length"},
	} {
		dir := filepath.Join(t.TempDir(), "m")
		require.NoError(t, os.CopyFS(dir, os.DirFS(model)))
		path := filepath.Join(dir, filepath.FromSlash(c.file))
		require.NoError(t, os.Chmod(path, 0o644))
		require.NoError(t, os.Truncate(path, 1000))
		code, stderr := runProg(t, "-model", dir, "-prompt", "x", "-q", "-out", filepath.Join(t.TempDir(), "x.png"))
		require.Equal(t, 1, code)
		line := strings.TrimSpace(stderr)
		require.True(t, strings.HasPrefix(line, c.want), line)
		require.Contains(t, line, path, "the file is named")
		for _, pkg := range []string{"nn: ", "tensor: ", "safetensors: ", "clip: ", "pipeline: ", "unet: unet", "vae: vae", "text encoder: text encoder"} {
			require.NotContains(t, line, pkg, line)
		}
	}
}
