package unet

import (
	"math"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

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

// goldenDir returns the golden folder, skipping the test when it is absent.
func goldenDir(t testing.TB) string { return testutil.Golden(t, "") }

// readNpy loads a golden .npy file (relative to the golden folder).
func readNpy(t testing.TB, rel string) *tensor.Tensor {
	return testutil.ReadNpy(t, testutil.Golden(t, rel))
}

// readNpyPath loads the .npy file at path.
func readNpyPath(t testing.TB, path string) *tensor.Tensor { return testutil.ReadNpy(t, path) }

// requireClose is testutil.RequireClose.
var requireClose = testutil.RequireClose
