package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

func TestMkModel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	var stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-config", "tiny", "-dtype", "bf16", "-out", dir}, &stderr), stderr.String())
	p, err := pipeline.Load(dir, pipeline.Options{})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, tensor.BF16, p.UNet.ConvIn.Weight.DType())
	res, err := p.Txt2Img(context.Background(), pipeline.Request{Prompt: "x", Guidance: 7.5, Steps: 2, Height: 64, Width: 64})
	require.NoError(t, err)
	require.Len(t, res.Images, 1)

	for _, args := range [][]string{
		{"-config", "tiny", "-out", dir},         // exists
		{"-config", "huge", "-out", t.TempDir()}, // unknown config
		{"-config", "tiny", "-out", ""},          // empty -out
		{"-config", "tiny", "-dtype", "i64", "-out", t.TempDir()},
	} {
		stderr.Reset()
		require.NotEqual(t, 0, run(args, &stderr), args)
		require.Equal(t, 1, bytes.Count(stderr.Bytes(), []byte("\n")), stderr.String())
	}
}

// -h prints the usage once (it was printed twice: once by the flag package
// through Usage, once more by the program).
func TestHelpOnce(t *testing.T) {
	var stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-h"}, &stderr))
	require.Equal(t, 1, strings.Count(stderr.String(), "Usage: mkmodel"), stderr.String())
	require.Contains(t, stderr.String(), "-config")
	require.Contains(t, stderr.String(), "-out")
}

// A positional configuration name is refused with a pointer to -config, and
// nothing is written.
func TestPositionalArgument(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tiny"}, "-config tiny"},
		{[]string{"-out", filepath.Join(dir, "m"), "sd15"}, "-config sd15"},
		{[]string{"-out", filepath.Join(dir, "m"), "somewhere"}, "-config and the folder in -out"},
	} {
		var stderr bytes.Buffer
		require.Equal(t, 2, run(c.args, &stderr), c.args)
		require.Equal(t, 1, strings.Count(stderr.String(), "\n"), stderr.String())
		require.Contains(t, stderr.String(), c.want)
	}
	entries, _ := os.ReadDir(dir)
	require.Empty(t, entries)
}

// mkmodel refuses an -out that is a FIFO or device rather than replacing it,
// and writes through a symbolic link to a folder.
func TestOutputKinds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	for _, out := range []string{fifo, "/dev/null"} {
		var stderr bytes.Buffer
		require.NotEqual(t, 0, run([]string{"-config", "tiny", "-out", out}, &stderr))
		require.Equal(t, 1, strings.Count(stderr.String(), "\n"), stderr.String())
	}
	st, err := os.Lstat(fifo)
	require.NoError(t, err)
	require.True(t, st.Mode()&os.ModeNamedPipe != 0, "the FIFO is still a FIFO")
	st, err = os.Lstat("/dev/null")
	require.NoError(t, err)
	require.True(t, st.Mode()&os.ModeCharDevice != 0, "/dev/null is still a device")
}
