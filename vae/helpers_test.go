package vae

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// golden returns a path under ../shared/golden/tiny-sd1, skipping the test when
// the shared folder is absent.
func golden(t testing.TB, rel string) string {
	t.Helper()
	root := filepath.Join("..", "..", "shared", "golden", "tiny-sd1")
	if _, err := os.Stat(root); err != nil {
		t.Skipf("golden data %s is absent: %v", root, err)
	}
	return filepath.Join(root, rel)
}

// readNpy reads a golden .npy file (float32) as an F32 tensor.
func readNpy(t testing.TB, rel string) *tensor.Tensor {
	t.Helper()
	a, err := npy.Read(golden(t, rel))
	require.NoError(t, err)
	v, err := a.Float32()
	require.NoError(t, err)
	return tensor.FromFloat32(v, a.Shape...)
}

// requireClose asserts |got-want| <= atol + rtol |want| elementwise, with equal
// shapes, and logs the largest difference.
func requireClose(t testing.TB, got, want *tensor.Tensor, atol, rtol float64, what string) {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape(), "%s: shape", what)
	g, w := got.Float32s(), want.Float32s()
	var maxAbs, worst float64
	at := 0
	for i := range w {
		d := math.Abs(float64(g[i]) - float64(w[i]))
		if math.IsNaN(d) {
			t.Fatalf("%s: NaN at %d (got %g want %g)", what, i, g[i], w[i])
		}
		maxAbs = max(maxAbs, d)
		if r := d / (atol + rtol*math.Abs(float64(w[i]))); r > worst {
			worst, at = r, i
		}
	}
	if worst > 1 {
		t.Fatalf("%s: out of tolerance (atol %g, rtol %g): max |diff| %.3g, worst at %d: got %g want %g",
			what, atol, rtol, maxAbs, at, g[at], w[at])
	}
	t.Logf("%s: max |diff| %.3g (%.2f of the tolerance)", what, maxAbs, worst)
}
