package tensor

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// randT returns an F32 tensor of the shape with N(0,1) values from a math/rand
// source (independent of the code under test).
func randT(r *rand.Rand, shape ...int) *Tensor {
	d := make([]float32, Shape(shape).Numel())
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return FromFloat32(d, shape...)
}

// eachIndex calls fn for every index of shape in row-major order.
func eachIndex(shape Shape, fn func(idx []int)) {
	n := shape.Numel()
	idx := make([]int, len(shape))
	for e := 0; e < n; e++ {
		fn(idx)
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// bcastIndex maps an index of the broadcast shape to an index of shape s.
func bcastIndex(idx []int, s Shape) []int {
	off := len(idx) - len(s)
	out := make([]int, len(s))
	for i := range s {
		if s[i] != 1 {
			out[i] = idx[off+i]
		}
	}
	return out
}

func near(a, b, atol, rtol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if math.IsInf(b, 0) {
		return a == b
	}
	return math.Abs(a-b) <= atol+rtol*math.Abs(b)
}

// requireClose checks |got-want| <= atol + rtol*|want| elementwise and reports
// the max difference and the first mismatches.
func requireClose(t *testing.T, name string, got []float32, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	var maxd float64
	bad := 0
	msg := ""
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > maxd || math.IsNaN(d) {
			maxd = d
		}
		if !near(float64(got[i]), float64(want[i]), atol, rtol) {
			if bad < 5 {
				msg += fmt.Sprintf(" [%d] got %v want %v;", i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d/%d mismatches (max diff %g):%s", name, bad, len(got), maxd, msg)
	}
}

func requireShape(t *testing.T, x *Tensor, want ...int) {
	t.Helper()
	if !x.Shape().Equal(want) {
		t.Fatalf("shape %v, want %v", x.Shape(), Shape(want))
	}
}

func requirePanic(t *testing.T, name string, fn func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatalf("%s: no panic", name)
		}
		if s, ok := r.(string); !ok || len(s) < 8 || s[:8] != "tensor: " {
			t.Fatalf("%s: panic %v does not start with \"tensor: \"", name, r)
		}
	}()
	fn()
}

// values returns x's elements via At (independent of Float32s/Contiguous).
func values(x *Tensor) []float32 {
	var out []float32
	eachIndex(x.shape, func(idx []int) { out = append(out, x.At(idx...)) })
	return out
}

// nonContig returns a tensor equal to x but laid out non-contiguously (a
// transposed copy transposed back, padded by a slice).
func nonContig(x *Tensor) *Tensor {
	s := x.Shape()
	r := len(s)
	if r == 0 {
		return x
	}
	// Build a buffer with the last dim padded by 2, fill, then slice.
	ps := s.Clone()
	ps[r-1] += 2
	p := Zeros(F32, ps...)
	v := p.Slice(-1, 1, 1+s[r-1])
	v.CopyFrom(x)
	if r >= 2 {
		// transpose twice through a permuted copy to scramble strides
		tt := v.Transpose(0, r-1).Contiguous().Transpose(0, r-1)
		return tt
	}
	return v
}
