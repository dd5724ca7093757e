package metrics

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func TestFrechetHandDerived(t *testing.T) {
	// Identical statistics: distance 0.
	s := randomStats(t, 300, 10, 3)
	d, err := FrechetDistance(s, s)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(d) > 1e-12*mat.Trace(s.Sigma) {
		t.Errorf("FD(s, s) = %g, want 0", d)
	}
	// 1-D Gaussians: (m1-m2)² + (s1-s2)².
	for _, c := range []struct{ m1, s1, m2, s2 float64 }{
		{0, 1, 0, 1}, {1, 2, -1, 0.5}, {3.5, 0.1, 3.5, 10}, {0, 0, 2, 0},
	} {
		a := &Stats{Mu: []float64{c.m1}, Sigma: mat.NewDense(1, 1, []float64{c.s1 * c.s1})}
		b := &Stats{Mu: []float64{c.m2}, Sigma: mat.NewDense(1, 1, []float64{c.s2 * c.s2})}
		got, err := FrechetDistance(a, b)
		if err != nil {
			t.Fatal(err)
		}
		want := (c.m1-c.m2)*(c.m1-c.m2) + (c.s1-c.s2)*(c.s1-c.s2)
		if math.Abs(got-want) > 1e-12*math.Max(1, want) {
			t.Errorf("%+v: FD %v, want %v", c, got, want)
		}
	}
	// Diagonal covariances: Σ_i (m1_i-m2_i)² + (s1_i - s2_i)².
	a := &Stats{Mu: []float64{1, 2, 3}, Sigma: mat.NewDense(3, 3, []float64{4, 0, 0, 0, 9, 0, 0, 0, 1})}
	b := &Stats{Mu: []float64{0, 2, 5}, Sigma: mat.NewDense(3, 3, []float64{1, 0, 0, 0, 9, 0, 0, 0, 16})}
	got, _ := FrechetDistance(a, b)
	if want := 1.0 + 0 + 4 + 1 + 0 + 9; math.Abs(got-want) > 1e-12 {
		t.Errorf("diagonal: FD %v, want %v", got, want)
	}
	// Mismatched dimensions are an error.
	if _, err := FrechetDistance(a, &Stats{Mu: []float64{1}, Sigma: mat.NewDense(1, 1, []float64{1})}); err == nil {
		t.Error("dimension mismatch accepted")
	}
}

func TestFrechetSymmetricAgrees(t *testing.T) {
	for _, c := range []struct{ n, d int }{{400, 16}, {30, 40}, {2000, 64}} {
		a, b := randomStats(t, c.n, c.d, 11), randomStats(t, c.n, c.d, 12)
		r, err := Frechet(a, b, DefaultFrechetEps)
		if err != nil {
			t.Fatal(err)
		}
		f, err := FrechetSymmetric(a, b)
		if err != nil {
			t.Fatal(err)
		}
		scale := mat.Trace(a.Sigma) + mat.Trace(b.Sigma)
		// Rank-deficient Σ (n <= d) differ by the square roots of rounding-level
		// eigenvalues that the Schur method keeps.
		tol := 1e-12
		if c.n <= c.d {
			tol = 1e-7
		}
		if e := math.Abs(f.Distance-r.Distance) / scale; e > tol {
			t.Errorf("%+v: symmetric %v, Schur %v (rel %g)", c, f.Distance, r.Distance, e)
		}
	}
}

func TestAccumulatorStable(t *testing.T) {
	// A large common offset must not destroy the covariance.
	rng := rand.New(rand.NewPCG(1, 2))
	const n, d = 1000, 3
	acc := NewAccumulator(d)
	ref := NewAccumulator(d)
	x := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := range x {
			x[j] = rng.NormFloat64() * float64(j+1)
		}
		ref.Add(x)
		for j := range x {
			x[j] += 1e9
		}
		acc.Add(x)
	}
	s, _ := acc.Stats()
	r, _ := ref.Stats()
	if e := maxRel(s.Sigma, r.Sigma); e > 1e-6 {
		t.Errorf("offset 1e9 changed the covariance by %g", e)
	}
	if _, err := NewAccumulator(2).Stats(); err == nil {
		t.Error("Stats of an empty accumulator should fail")
	}
	if err := NewAccumulator(2).Merge(NewAccumulator(3)); err == nil {
		t.Error("merging different dimensions should fail")
	}
}

func TestSSIMHandDerived(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	img := NewGray(170, 165)
	for i := range img.Pix {
		img.Pix[i] = rng.Float64()
	}
	for _, f := range []func(x, y Gray, r float64) (float64, error){SSIM, MSSSIM} {
		v, err := f(img, img, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(v-1) > 1e-12 {
			t.Errorf("similarity of an image with itself = %v, want 1", v)
		}
	}
	// Constant images: SSIM = (2ab + C1)/(a²+b²+C1).
	a, b := NewGray(20, 20), NewGray(20, 20)
	for i := range a.Pix {
		a.Pix[i], b.Pix[i] = 0.25, 0.75
	}
	v, _ := SSIM(a, b, 1)
	c1 := 0.01 * 0.01
	if want := (2*0.25*0.75 + c1) / (0.25*0.25 + 0.75*0.75 + c1); math.Abs(v-want) > 1e-12 {
		t.Errorf("constant images: SSIM %v, want %v", v, want)
	}
	// MS-SSIM needs more than 160 pixels a side.
	small := NewGray(160, 300)
	if _, err := MSSSIM(small, small, 1); err == nil || !strings.Contains(err.Error(), "160") {
		t.Errorf("160-pixel image: %v", err)
	}
	big := NewGray(161, 300)
	if _, err := MSSSIM(big, big, 1); err != nil {
		t.Errorf("161-pixel image: %v", err)
	}
	if _, err := SSIM(NewGray(20, 20), NewGray(20, 21), 1); err == nil {
		t.Error("size mismatch accepted")
	}
	if _, err := PromptDiversity([]Gray{big}); err == nil {
		t.Error("diversity of one image accepted")
	}
}

func TestAvgPool2(t *testing.T) {
	// 3×3 → 2×2 with one zero row/column of padding on each side, /4 always.
	x := Gray{W: 3, H: 3, Pix: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}}
	got := avgPool2(x)
	want := []float64{1.0 / 4, (2 + 3) / 4.0, (4 + 7) / 4.0, (5 + 6 + 8 + 9) / 4.0}
	if got.W != 2 || got.H != 2 {
		t.Fatalf("size %dx%d", got.W, got.H)
	}
	for i := range want {
		if math.Abs(got.Pix[i]-want[i]) > 1e-15 {
			t.Errorf("pix %d = %v, want %v", i, got.Pix[i], want[i])
		}
	}
}

func TestNPYRoundTrip(t *testing.T) {
	for _, shape := range [][]int{{}, {0}, {3}, {2, 3}, {1, 2, 2}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float64, n)
		for i := range data {
			data[i] = float64(i) - 0.5
		}
		b := AppendNPY(nil, shape, data)
		if (len(b)-len(data)*8)%64 != 0 {
			t.Errorf("shape %v: header not padded to 64 bytes", shape)
		}
		a, err := ParseNPY(b)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		if len(a.Shape) != len(shape) || len(a.Data) != n {
			t.Fatalf("shape %v: got %v", shape, a.Shape)
		}
		for i := range data {
			if a.Data[i] != data[i] {
				t.Fatal("data changed")
			}
		}
	}
}

// npyWithHeader builds a version-1.0 .npy file with the given header text and
// payload.
func npyWithHeader(h string, payload []byte) []byte {
	b := []byte(npyMagic + "\x01\x00")
	b = append(b, byte(len(h)), byte(len(h)>>8))
	b = append(b, h...)
	return append(b, payload...)
}

func TestNPYErrors(t *testing.T) {
	eight := make([]byte, 8)
	for _, c := range []struct {
		name, header string
		payload      []byte
		want         string
	}{
		{"big-endian", "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }\n", eight, "dtype"},
		{"int", "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\n", eight, "dtype"},
		{"fortran", "{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }\n", eight, "fortran_order"},
		{"short data", "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n", eight, "needs 16"},
		{"long data", "{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n", append(eight, 0), "needs 8"},
		{"missing key", "{'descr': '<f8', 'shape': (1,), }\n", eight, "keys"},
		{"extra key", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", eight, "unexpected key"},
		{"not tuple", "{'descr': '<f8', 'fortran_order': False, 'shape': (1), }\n", eight, "shape"},
		{"negative", "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }\n", eight, "shape"},
		{"no newline", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", eight, "newline"},
		{"huge", "{'descr': '<f8', 'fortran_order': False, 'shape': (999999999999, 999999999999), }\n", eight, "too large"},
	} {
		_, err := ParseNPY(npyWithHeader(c.header, c.payload))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if _, err := ParseNPY([]byte("PK\x03\x04")); err == nil {
		t.Error("zip accepted as npy")
	}
	// Double-quoted keys and a float32 payload are fine.
	f4 := []byte{0, 0, 0x80, 0x3f} // 1.0f
	a, err := ParseNPY(npyWithHeader("{\"descr\": \"<f4\", \"shape\": (1,), \"fortran_order\": False}\n", f4))
	if err != nil || a.Data[0] != 1 {
		t.Errorf("float32: %v %v", a, err)
	}
	// npz: missing sigma.
	b, _ := EncodeNPZ([]string{"mu"}, [][]int{{2}}, [][]float64{{1, 2}})
	if _, err := StatsFromNPZ(b); err == nil || !strings.Contains(err.Error(), "sigma") {
		t.Errorf("missing sigma: %v", err)
	}
	b, _ = EncodeNPZ([]string{"mu", "sigma"}, [][]int{{2}, {3, 3}}, [][]float64{{1, 2}, make([]float64, 9)})
	if _, err := StatsFromNPZ(b); err == nil || !strings.Contains(err.Error(), "sigma has shape") {
		t.Errorf("shape mismatch: %v", err)
	}
	if _, err := ParseNPZ(bytes.Repeat([]byte{1}, 100)); err == nil {
		t.Error("garbage accepted as npz")
	}
}
