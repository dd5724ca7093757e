package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/stretchr/testify/require"
)

// run runs the program in-process and returns its exit status and stderr.
func run(t *testing.T, mode cli.Mode, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(mode, args, &stdout, &stderr)
	return code, stderr.String()
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// TestInpaintProgramGolden: the program with the 9-channel tiny model and
// the inpaint_ddim6 case's settings writes diffusers' image (within 1 per
// value) and says which kind of inpainting ran.
func TestInpaintProgramGolden(t *testing.T) {
	g := testutil.SharedDir(t, "golden/tiny-sd1-inpaint")
	out := filepath.Join(t.TempDir(), "r.png")
	code, stderr := run(t, cli.Inpaint, "-model", filepath.Join(g, "model", "diffusers"),
		"-init", filepath.Join(g, "images", "inp0.png"), "-mask", filepath.Join(g, "masks", "mask0.png"),
		"-prompt", "Right lower lobe consolidation.", "-negative", "blurry, low quality",
		"-steps", "6", "-scheduler", "ddim", "-seed", "2002", "-height", "64", "-width", "64", "-q", "-out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "inpainting with the inpainting U-Net")
	require.NotContains(t, stderr, "strength", "the default -strength is not reported as ignored")
	require.Contains(t, stderr, "warning: the mask has gray values: an inpainting model's mask is thresholded at 0.5", "mask0 has a soft edge")
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	want, err := npy.Read(filepath.Join(g, "inpaint_ddim6", "image_uint8.npy"))
	require.NoError(t, err)
	worst := 0
	for i, v := range want.Data {
		p := i / 3
		c := img.At(p%64, p/64)
		r, gg, b, _ := c.RGBA()
		got := []uint32{r >> 8, gg >> 8, b >> 8}[i%3]
		worst = max(worst, abs(int(got)-int(v)))
	}
	require.LessOrEqual(t, worst, 1)
	text, err := pipeline.ReadPNGText(data)
	require.NoError(t, err)
	require.Contains(t, text, pipeline.TextChunk{Key: "inpaint", Value: pipeline.InpaintModel})

	// An explicit strength is ignored with a warning.
	code, stderr = run(t, cli.Inpaint, "-model", filepath.Join(g, "model", "diffusers"),
		"-init", filepath.Join(g, "images", "inp0.png"), "-mask", filepath.Join(g, "masks", "mask0.png"),
		"-prompt", "x", "-steps", "2", "-strength", "0.5", "-height", "32", "-width", "32", "-q", "-out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "strength 0.5 is ignored")

	// An inpainting model refuses txt2img and img2img with one line.
	code, stderr = run(t, cli.Txt2Img, "-model", filepath.Join(g, "model", "diffusers"), "-prompt", "x", "-steps", "2", "-q", "-out", out)
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "inpainting model")
	code, stderr = run(t, cli.Img2Img, "-model", filepath.Join(g, "model", "diffusers"), "-init", filepath.Join(g, "images", "inp0.png"), "-prompt", "x", "-steps", "2", "-q", "-out", out)
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "inpainting model")
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestInpaintProgramLegacy: an ordinary model inpaints by mask blending; a
// gray mask of another size than the init image is used with warnings; bad
// inputs fail with one line and no output.
func TestInpaintProgramLegacy(t *testing.T) {
	model := testutil.Golden(t, "model/diffusers")
	dir := t.TempDir()
	initImg := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range initImg.Pix {
		initImg.Pix[i] = uint8(i * 7)
	}
	initPath := filepath.Join(dir, "init.png")
	writePNG(t, initPath, initImg)
	mask := image.NewGray(image.Rect(0, 0, 20, 20))
	for i := range mask.Pix {
		mask.Pix[i] = uint8(i % 3 * 100) // 0, 100, 200: gray values
	}
	maskPath := filepath.Join(dir, "mask.png")
	writePNG(t, maskPath, mask)
	outDir := t.TempDir()
	res := filepath.Join(outDir, "r.png")
	code, stderr := run(t, cli.Inpaint, "-model", model, "-init", initPath, "-mask", maskPath, "-strength", "0.5",
		"-prompt", "effusion", "-steps", "4", "-height", "32", "-width", "32", "-q", "-out", res)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "2 of 4 steps (strength 0.5) pndm, inpainting by mask blending")
	require.Contains(t, stderr, "the mask is 20x20 but the init image 40x30: both are resized to the output size 32x32")
	require.Contains(t, stderr, "gray values")
	data, err := os.ReadFile(res)
	require.NoError(t, err)
	text, err := pipeline.ReadPNGText(data)
	require.NoError(t, err)
	require.Contains(t, text, pipeline.TextChunk{Key: "inpaint", Value: pipeline.InpaintLegacy})
	require.Contains(t, text, pipeline.TextChunk{Key: "strength", Value: "0.5"})
	require.NoError(t, os.Remove(res))

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-init", initPath}, "-mask is empty"},
		{[]string{"-mask", maskPath}, "-init is empty"},
		{[]string{"-init", initPath, "-mask", filepath.Join(dir, "missing.png")}, "mask: open"},
		{[]string{"-init", initPath, "-mask", initPath + ".txt"}, "mask"},
		{[]string{"-init", maskPath + ".nope", "-mask", maskPath}, "init image"},
		{[]string{"-init", initPath, "-mask", maskPath, "-strength", "2"}, "-strength 2; expected a value in [0, 1]"},
	} {
		if strings.HasSuffix(c.args[len(c.args)-1], ".txt") {
			require.NoError(t, os.WriteFile(c.args[len(c.args)-1], []byte("not an image"), 0o644))
		}
		code, stderr := run(t, cli.Inpaint, append([]string{"-model", model, "-prompt", "x", "-steps", "2", "-q", "-out", res}, c.args...)...)
		require.NotEqual(t, 0, code)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		require.Len(t, lines, 1, stderr)
		require.Contains(t, lines[0], c.want)
		entries, _ := os.ReadDir(outDir)
		require.Empty(t, entries)
	}
}
