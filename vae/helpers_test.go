package vae

import (
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor"
)

// golden returns a path under the tiny-sd1 golden folder (skipping when absent).
func golden(t testing.TB, rel string) string { return testutil.Golden(t, rel) }

// readNpy reads a golden .npy file as a tensor.
func readNpy(t testing.TB, rel string) *tensor.Tensor {
	return testutil.ReadNpy(t, testutil.Golden(t, rel))
}

// requireClose is testutil.RequireClose.
var requireClose = testutil.RequireClose
