// Package testutil holds helpers shared by the packages' tests: locating the
// reference data of the shared folder beside the checkout (../shared: golden
// outputs, the CLIP tokenizer vocabulary), skipping when it is absent or failing
// when $ROENTGO_REQUIRE_GOLDEN asks for it (shared.go); reading .npy arrays as
// tensors; and comparing tensors within |got-want| <= atol + rtol*|want|.
package testutil

import (
	"math"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// ReadNpy reads the .npy file at path as a tensor: I64 for integer arrays (int64
// or int32), F32 otherwise.
func ReadNpy(t testing.TB, path string) *tensor.Tensor {
	t.Helper()
	a, err := npy.Read(path)
	require.NoError(t, err)
	if a.DType == "i8" || a.DType == "i4" {
		v, err := a.Int64()
		require.NoError(t, err)
		return tensor.FromInt64(v, a.Shape...)
	}
	v, err := a.Float32()
	require.NoError(t, err)
	return tensor.FromFloat32(v, a.Shape...)
}

// RequireClose asserts equal shapes and |got-want| <= atol + rtol*|want| for every
// element (a NaN on either side fails), and logs the largest difference and the
// share of the tolerance it uses.
func RequireClose(t testing.TB, got, want *tensor.Tensor, atol, rtol float64, what string) {
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
		t.Fatalf("%s: out of tolerance (atol %g, rtol %g): max |diff| %.3g, worst at %d: got %g, want %g",
			what, atol, rtol, maxAbs, at, g[at], w[at])
	}
	t.Logf("%s: max |diff| %.3g (%.2f of the tolerance)", what, maxAbs, worst)
}

// NoPanic runs f and turns a panic into a test failure naming what: for
// tests that feed user data (configs, files) to code that must return
// errors, never panic.
func NoPanic(t testing.TB, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: panic: %v", what, r)
		}
	}()
	f()
}

// RequireGradClose compares a gradient with its golden value the way the
// training golden data asks (../shared/golden/README-train.md): the largest
// elementwise difference must be at most rel times the golden tensor's 2-norm;
// for a parameter whose true gradient is zero (zero set), every element must
// be at most 1e-6 in magnitude instead. It returns the difference relative to
// the norm (0 for zero-gradient parameters).
func RequireGradClose(t testing.TB, name string, got, want []float32, zero bool, rel float64) float64 {
	t.Helper()
	require.Equal(t, len(want), len(got), "%s: gradient size", name)
	if zero {
		for i, v := range got {
			require.LessOrEqual(t, math.Abs(float64(v)), 1e-6, "%s[%d]: the true gradient is zero", name, i)
		}
		return 0
	}
	var norm, diff float64
	for i := range want {
		norm += float64(want[i]) * float64(want[i])
		diff = math.Max(diff, math.Abs(float64(got[i])-float64(want[i])))
	}
	r := diff / math.Sqrt(norm)
	require.LessOrEqual(t, r, rel, "%s: max |g - golden| = %g, %g of the golden gradient's norm", name, diff, r)
	return r
}
