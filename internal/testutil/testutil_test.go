package testutil

import (
	"testing"

	"github.com/roentgo/roentgo/tensor"
)

// recorder is a testing.TB that records a fatal failure instead of stopping.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}
func (r *recorder) Logf(string, ...any)   {}

func TestRequireClose(t *testing.T) {
	want := tensor.FromFloat32([]float32{1, -2, 100}, 3)
	// Within atol + rtol|want|: 1e-3 + 1e-3*100 = 0.101 for the last element.
	RequireClose(t, tensor.FromFloat32([]float32{1.0005, -2.001, 100.1}, 3), want, 1e-3, 1e-3, "inside")

	r := &recorder{TB: t}
	RequireClose(r, tensor.FromFloat32([]float32{1, -2, 100.2}, 3), want, 1e-3, 1e-3, "outside")
	if !r.failed {
		t.Fatal("a difference of 0.2 against a tolerance of 0.101 passed")
	}
}
