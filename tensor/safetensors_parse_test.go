package tensor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

// parseTestTensors are written by SaveSafetensors for the ParseSafetensors
// tests: every dtype the package computes with, a 0-d tensor.
func parseTestTensors() map[string]*Tensor {
	f32 := FromFloat32([]float32{1, -2.5, 3, 4e-8, 5, 6}, 2, 3)
	return map[string]*Tensor{
		"a.weight": f32,
		"h":        f32.To(F16),
		"b":        f32.To(BF16),
		"ids":      FromInt64([]int64{0, 1, -7, 1 << 40}, 4),
		"scalar":   Scalar(7),
	}
}

// requireSameArchive checks that got holds the same tensors (names, dtypes,
// shapes, values bit for bit) and metadata as want.
func requireSameArchive(t *testing.T, want, got *Archive) {
	t.Helper()
	require.Equal(t, want.Names(), got.Names())
	require.Equal(t, want.Metadata, got.Metadata)
	for _, name := range want.Names() {
		wdt, wsh, _ := want.Info(name)
		gdt, gsh, ok := got.Info(name)
		require.True(t, ok, name)
		require.Equal(t, wdt, gdt, name)
		require.True(t, wsh.Equal(gsh), name)
		w, err := want.Get(name)
		require.NoError(t, err, name)
		g, err := got.Get(name)
		require.NoError(t, err, name)
		require.Equal(t, w.DType(), g.DType(), name)
		switch w.DType() {
		case I64:
			require.Equal(t, w.Int64s(), g.Int64s(), name)
		case F16, BF16:
			require.Equal(t, w.HalfData(), g.HalfData(), name)
		default:
			require.Equal(t, w.Float32s(), g.Float32s(), name)
		}
	}
}

// TestParseSafetensors: the archive of a file's bytes is the archive of the
// file, whether the bytes are aligned (aliased) or not (copied), and Close
// releases nothing the returned tensors use.
func TestParseSafetensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, SaveSafetensors(path, parseTestTensors(), map[string]string{"format": "pt"}))
	buf, err := os.ReadFile(path)
	require.NoError(t, err)

	file, err := LoadSafetensors(path)
	require.NoError(t, err)
	defer file.Close()

	mem, err := ParseSafetensors("m.safetensors", buf)
	require.NoError(t, err)
	requireSameArchive(t, file, mem)
	require.Equal(t, "pt", mem.Metadata["format"])
	g1, _ := mem.Get("h")
	g2, _ := mem.Get("h")
	require.Same(t, g1, g2)

	// Aligned bytes are aliased: the tensor sees a change of buf.
	sf, err := safetensors.Parse(buf)
	require.NoError(t, err)
	ti, _ := sf.Get("a.weight")
	w, err := mem.Get("a.weight")
	require.NoError(t, err)
	require.Equal(t, float32(1), w.Float32s()[0])
	ti.Data[3] = 0x40 // 1.0f = 0x3f800000 -> 0x40800000 = 4.0f
	require.Equal(t, float32(4), w.Float32s()[0])
	ti.Data[3] = 0x3f

	// Misaligned bytes (every tensor one byte off) are copied, same values.
	shifted := make([]byte, len(buf)+1)
	copy(shifted[1:], buf)
	odd, err := ParseSafetensors("odd.safetensors", shifted[1:])
	require.NoError(t, err)
	requireSameArchive(t, file, odd)

	// Close unmaps nothing: tensors already returned stay valid, later Gets
	// fail, and a second Close is fine.
	require.NoError(t, mem.Close())
	require.Equal(t, float32(1), w.Float32s()[0])
	_, err = mem.Get("b")
	require.ErrorContains(t, err, "closed")
	require.NoError(t, mem.Close())
}

// TestParseSafetensorsErrors: truncated or corrupt bytes give an error naming
// the file and the problem, never a panic.
func TestParseSafetensorsErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, SaveSafetensors(path, parseTestTensors(), nil))
	buf, err := os.ReadFile(path)
	require.NoError(t, err)

	_, err = ParseSafetensors("empty.safetensors", nil)
	require.ErrorContains(t, err, "shorter than the 8-byte header length")
	require.ErrorContains(t, err, "empty.safetensors")
	// Every truncation is an error (the data region no longer fits the header).
	for n := 0; n < len(buf); n++ {
		_, err := ParseSafetensors("cut.safetensors", buf[:n])
		require.Error(t, err, "truncated to %d of %d bytes", n, len(buf))
		require.ErrorContains(t, err, "cut.safetensors")
	}
	// A header length past the end of the bytes.
	bad := append([]byte(nil), buf...)
	bad[7] = 0x7f
	_, err = ParseSafetensors("bad.safetensors", bad)
	require.ErrorContains(t, err, "header length")
	// Not JSON.
	bad = append([]byte(nil), buf...)
	bad[8] = 'x'
	_, err = ParseSafetensors("bad.safetensors", bad)
	require.ErrorContains(t, err, "JSON")
	require.ErrorContains(t, err, "bad.safetensors")
}
