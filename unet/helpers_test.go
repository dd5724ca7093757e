package unet

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// golden is the tiny-sd1 reference data (diffusers 0.16.1, float32).
const golden = "../../shared/golden/tiny-sd1"

// goldenDir returns the golden folder, skipping the test when it is absent.
func goldenDir(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(golden); err != nil {
		t.Skipf("golden data %s absent: %v", golden, err)
	}
	return golden
}

// readNpy loads a golden .npy file (relative to the golden folder) as F32.
func readNpy(t testing.TB, rel string) *tensor.Tensor {
	t.Helper()
	return readNpyPath(t, filepath.Join(goldenDir(t), rel))
}

// readNpyPath loads the .npy file at path as F32.
func readNpyPath(t testing.TB, path string) *tensor.Tensor {
	t.Helper()
	a, err := npy.Read(path)
	require.NoError(t, err)
	v, err := a.Float32()
	require.NoError(t, err)
	return tensor.FromFloat32(v, a.Shape...)
}

// requireClose asserts |got-want| <= atol + rtol |want| elementwise and equal
// shapes, logging the largest difference and how much of the tolerance it uses.
func requireClose(t testing.TB, got, want *tensor.Tensor, atol, rtol float64, what string) {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape(), "%s: shape", what)
	g, w := got.Float32s(), want.Float32s()
	var maxAbs, worst float64
	at := 0
	for i := range w {
		d := math.Abs(float64(g[i]) - float64(w[i]))
		if math.IsNaN(d) {
			t.Fatalf("%s: NaN at %d (got %g, want %g)", what, i, g[i], w[i])
		}
		maxAbs = max(maxAbs, d)
		if r := d / (atol + rtol*math.Abs(float64(w[i]))); r > worst {
			worst, at = r, i
		}
	}
	if worst > 1 {
		t.Fatalf("%s: out of tolerance (atol %g, rtol %g): max |diff| %.3g; worst at %d: got %g want %g (%.2fx the tolerance)",
			what, atol, rtol, maxAbs, at, g[at], w[at], worst)
	}
	t.Logf("%s: max |diff| %.3g (%.2f of the tolerance)", what, maxAbs, worst)
}

// maxAbsDiff returns max |a-b| over equal-shaped tensors.
func maxAbsDiff(t testing.TB, a, b *tensor.Tensor) float64 {
	t.Helper()
	require.Equal(t, a.Shape(), b.Shape())
	x, y := a.Float32s(), b.Float32s()
	m := 0.0
	for i := range x {
		m = max(m, math.Abs(float64(x[i])-float64(y[i])))
	}
	return m
}
