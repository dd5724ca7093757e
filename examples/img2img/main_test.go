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
	"github.com/stretchr/testify/require"
)

func TestImg2ImgProgram(t *testing.T) {
	model, err := filepath.Abs(testutil.Golden(t, "model/diffusers"))
	require.NoError(t, err)
	dir := t.TempDir()
	bin := filepath.Join(dir, "img2img")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	// A grayscale 40x30 init image (promoted to 3 channels, cropped, resized).
	initImg := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range initImg.Pix {
		initImg.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, initImg))
	initPath := filepath.Join(dir, "init.png")
	require.NoError(t, os.WriteFile(initPath, buf.Bytes(), 0o644))
	outDir := t.TempDir()
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), stderr.String()
		}
		require.NoError(t, err)
		return 0, stderr.String()
	}
	res := filepath.Join(outDir, "r.png")
	code, stderr := run("-model", model, "-init", initPath, "-strength", "0.5", "-prompt", "effusion", "-steps", "4", "-height", "32", "-width", "32", "-out", res)
	require.Equal(t, 0, code, stderr)
	data, err := os.ReadFile(res)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 32, 32), img.Bounds())
	text, err := pipeline.ReadPNGText(data)
	require.NoError(t, err)
	require.Contains(t, text, pipeline.TextChunk{Key: "strength", Value: "0.5"})
	require.Contains(t, stderr, "2 of 4 steps (strength 0.5)", "the summary says the steps that ran")
	require.NoError(t, os.Remove(res))

	// Strength 0 keeps the image: the summary must not claim the requested
	// steps ran (it said "4 steps").
	code, stderr = run("-model", model, "-init", initPath, "-strength", "0", "-prompt", "effusion", "-steps", "4", "-height", "32", "-width", "32", "-q", "-out", res)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "0 of 4 steps (strength 0)")
	require.NoError(t, os.Remove(res))

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-init", initPath, "-strength", "1.5"}, "-strength 1.5; expected a value in [0, 1]"},
		{[]string{"-init", initPath, "-strength", "-0.1"}, "-strength"},
		{[]string{}, "-init is empty"},
		{[]string{"-init", filepath.Join(dir, "missing.png")}, "init image"},
		{[]string{"-init", bin}, "expected a PNG or JPEG"},
	} {
		code, stderr := run(append([]string{"-model", model, "-prompt", "x", "-steps", "2", "-q", "-out", res}, c.args...)...)
		require.NotEqual(t, 0, code)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		require.Len(t, lines, 1, stderr)
		require.Contains(t, lines[0], c.want)
		entries, _ := os.ReadDir(outDir)
		require.Empty(t, entries)
	}
}
