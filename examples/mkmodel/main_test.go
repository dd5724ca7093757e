package main

import (
	"bytes"
	"context"
	"path/filepath"
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
