package nn

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

// readNpy loads testdata/<name> as an F32 tensor (I64 for integer arrays).
func readNpy(t testing.TB, name string) *tensor.Tensor {
	return testutil.ReadNpy(t, filepath.Join("testdata", name))
}

// openCase opens testdata/<name>.safetensors and registers its Close.
func openCase(t testing.TB, name string) *SafetensorsSource {
	t.Helper()
	src, err := OpenSafetensors(filepath.Join("testdata", name+".safetensors"))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return src
}

// closeness returns the largest |g-w| and the largest ratio |g-w| / (atol +
// rtol |w|) (> 1 means out of tolerance), and the index of the worst element.
func closeness(got, want []float32, atol, rtol float64) (maxAbs, worst float64, at int) {
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.NaN(), math.Inf(1), i
		}
		maxAbs = max(maxAbs, d)
		if r := d / (atol + rtol*math.Abs(float64(want[i]))); r > worst {
			worst, at = r, i
		}
	}
	return
}

// requireClose asserts |got-want| <= atol + rtol |want| elementwise and equal shapes.
func requireClose(t testing.TB, got, want *tensor.Tensor, atol, rtol float64, what string) {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape(), "%s: shape", what)
	g, w := got.Float32s(), want.Float32s()
	maxAbs, worst, at := closeness(g, w, atol, rtol)
	if worst > 1 {
		t.Fatalf("%s: out of tolerance (atol %g, rtol %g): max |diff| %.3g; worst at %d: got %g want %g",
			what, atol, rtol, maxAbs, at, g[at], w[at])
	}
	t.Logf("%s: max |diff| %.3g (%.2f of the tolerance)", what, maxAbs, worst)
}

// halfSource returns the case's parameters converted to dt (F16 or BF16) and,
// beside them, the same rounded values in F32.
func halfSource(t testing.TB, src Source, dt tensor.DType) (half, rounded MapSource) {
	t.Helper()
	half, rounded = MapSource{}, MapSource{}
	for _, k := range src.Keys() {
		x, err := src.Load(k)
		require.NoError(t, err)
		h := x.To(dt)
		half[k] = h
		rounded[k] = h.To(tensor.F32)
	}
	return
}

func rngFor(seed uint64) *rng.Generator { return rng.New(seed) }
