package tensor

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDropResident checks that dropping the resident pages of archive tensors
// (and of tensors that own their memory, which must be ignored) changes no
// value.
func TestDropResident(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	vals := make([]float32, 1<<14) // 64 KiB: several pages
	for i := range vals {
		vals[i] = float32(i%251) - 100.5
	}
	require.NoError(t, SaveSafetensors(path, map[string]*Tensor{
		"w": FromFloat32(vals, 128, 128),
		"h": FromFloat32(vals[:300], 300).To(F16),
	}, nil))
	a, err := LoadSafetensors(path)
	require.NoError(t, err)
	defer a.Close()
	w, err := a.Get("w")
	require.NoError(t, err)
	h, err := a.Get("h")
	require.NoError(t, err)
	owned := FromFloat32(append([]float32(nil), vals...), 128, 128)

	require.NoError(t, DropResident(w, nil, owned, w.Narrow(0, 3, 5)))
	require.Equal(t, vals, w.Float32s())
	require.Equal(t, vals, owned.Float32s(), "memory the tensor owns must never be dropped")
	hv := h.Float32s()
	require.Len(t, hv, 300)
	for i, v := range hv {
		require.Equal(t, vals[i], v, "F16 element %d", i) // x.5 and small integers are exact in F16
	}
	require.NoError(t, a.DropResident())
	require.Equal(t, vals, w.Float32s())
}
