package kerneltest

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// TestRunRef runs the suite on the references themselves: it must pass, which
// checks that the harness builds valid operands for every case.
func TestRunRef(t *testing.T) {
	Run(t, RefOps{}, Options{Short: true})
}

func TestCheck(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	want := []float32{1, 2, 0, nan, inf, -inf, 100}
	got := []float32{1, 2.0001, 1e-9, nan, inf, -inf, 100.001}
	r := Check(got, want, 1e-8, 1e-4)
	if !r.OK() {
		t.Fatalf("expected a pass: %v", r)
	}
	if math.Abs(r.MaxAbs-1e-3) > 1e-5 || r.AbsAt != 6 {
		t.Errorf("max abs %g at %d, want 1e-3 at 6", r.MaxAbs, r.AbsAt)
	}
	cases := []struct {
		name string
		got  []float32
		bad  int
	}{
		{"nan-for-number", []float32{nan, 2, 0, nan, inf, -inf, 100}, 1},
		{"number-for-nan", []float32{1, 2, 0, 0, inf, -inf, 100}, 1},
		{"wrong-inf", []float32{1, 2, 0, nan, -inf, inf, 100}, 2},
		{"finite-for-inf", []float32{1, 2, 0, nan, 3e38, -inf, 100}, 1},
		{"too-far", []float32{1.01, 2, 1e-3, nan, inf, -inf, 100}, 2},
		{"short", []float32{1, 2}, 5},
	}
	for _, c := range cases {
		if r := Check(c.got, want, 1e-8, 1e-4); r.Bad != c.bad {
			t.Errorf("%s: %d bad, want %d: %v", c.name, r.Bad, c.bad, r)
		}
	}
}

// recorder is a testing.TB that keeps the failure messages.
type recorder struct {
	testing.TB
	msgs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func TestCompareMessage(t *testing.T) {
	want := make([]float32, 2*3*4)
	got := make([]float32, len(want))
	got[1*12+2*4+3] = 0.5 // [1, 2, 3]
	for i := 0; i < 12; i++ {
		got[i] = 1 // 12 mismatches: only the first few are listed
	}
	got[0] = 2
	rec := &recorder{TB: t}
	if CompareShape(rec, "thing", []int{2, 3, 4}, got, want, 1e-6, 0) {
		t.Fatal("CompareShape passed a mismatch")
	}
	if len(rec.msgs) != 1 {
		t.Fatalf("want one error, got %q", rec.msgs)
	}
	m := rec.msgs[0]
	for _, s := range []string{"thing:", "13 of 24", "max abs diff 2 at [0, 0, 0]", "[0, 1, 3] (flat 7): got 1, want 0", "and 5 more"} {
		if !strings.Contains(m, s) {
			t.Errorf("message lacks %q:\n%s", s, m)
		}
	}
	if !Compare(rec, "same", want, want, 0, 0) || len(rec.msgs) != 1 {
		t.Error("Compare failed identical slices")
	}
}

// TestSuiteCatchesErrors checks that the suite's tolerances reject small real errors.
func TestSuiteCatchesErrors(t *testing.T) {
	x := []float32{1, 2, 3, 4}
	want := make([]float32, 4)
	cpu.SoftmaxRef(x, want, 1, 4)
	got := clone(want)
	got[3] *= 1 + 1e-4 // a 1e-4 relative error is beyond the float32 tolerance
	s := &suite{tol: 1, uc: u32}
	if r := Check(got, want, s.tol*1e-9, s.tol*(2e-6+1e-6*1)); r.OK() {
		t.Errorf("softmax tolerance accepts a 1e-4 relative error: %v", r)
	}
	atol, _ := s.productTol(1023, 1)
	if atol > 1e-3 {
		t.Errorf("f32 product tolerance for k=1023 is %g, too loose", atol)
	}
}
