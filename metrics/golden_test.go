package metrics

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// Golden files come from scripts/golden_eval.py (numpy 1.24, scipy 1.10,
// torch 1.13); the tests only read them.

func loadNPZ(t *testing.T, name string) map[string]*Array {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseNPZ(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return a
}

func get(t *testing.T, m map[string]*Array, key string) *Array {
	t.Helper()
	a, ok := m[key]
	if !ok {
		t.Fatalf("golden key %q missing", key)
	}
	return a
}

func scalar(t *testing.T, m map[string]*Array, key string) float64 {
	t.Helper()
	a := get(t, m, key)
	if len(a.Data) != 1 {
		t.Fatalf("golden key %q is not a scalar: shape %v", key, a.Shape)
	}
	return a.Data[0]
}

func dense(t *testing.T, m map[string]*Array, key string) *mat.Dense {
	t.Helper()
	a := get(t, m, key)
	if len(a.Shape) != 2 {
		t.Fatalf("golden key %q has shape %v, want 2-d", key, a.Shape)
	}
	return mat.NewDense(a.Shape[0], a.Shape[1], a.Data)
}

func stats(t *testing.T, m map[string]*Array, mu, sigma string) *Stats {
	return &Stats{Mu: get(t, m, mu).Data, Sigma: dense(t, m, sigma)}
}

// relErr returns |got-want| / max(|want|, floor).
func relErr(got, want, floor float64) float64 {
	return math.Abs(got-want) / math.Max(math.Abs(want), floor)
}

// maxRel returns max |a-b| / max(max|b|, tiny) over two equal-size matrices.
func maxRel(a, b mat.Matrix) float64 {
	r, c := b.Dims()
	var diff, scale float64
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			diff = math.Max(diff, math.Abs(a.At(i, j)-b.At(i, j)))
			scale = math.Max(scale, math.Abs(b.At(i, j)))
		}
	}
	return diff / math.Max(scale, 1e-300)
}

func TestAccumulatorGolden(t *testing.T) {
	g := loadNPZ(t, "features.npz")
	for _, k := range []string{"1", "2"} {
		f := dense(t, g, "f"+k)
		n, d := f.Dims()
		data := f.RawMatrix().Data
		// Uneven batches: 1 row, then 7, then the rest in 5s, across two
		// accumulators that are merged.
		a, b := NewAccumulator(d), NewAccumulator(d)
		a.Add(data[:d])
		a.AddBatch(data[d : 8*d])
		for r := 8; r < n; r += 5 {
			b.AddBatch(data[r*d : min(r+5, n)*d])
		}
		if err := a.Merge(b); err != nil {
			t.Fatal(err)
		}
		if a.Count() != int64(n) {
			t.Fatalf("count %d, want %d", a.Count(), n)
		}
		s, err := a.Stats()
		if err != nil {
			t.Fatal(err)
		}
		mu := get(t, g, "mu"+k).Data
		for i := range mu {
			if e := relErr(s.Mu[i], mu[i], 1); e > 1e-12 {
				t.Errorf("set %s: mu[%d] = %v, numpy %v (rel %g)", k, i, s.Mu[i], mu[i], e)
			}
		}
		// Set 2 has a 1e4 offset: a naive Σxxᵀ - n·μμᵀ would lose ~8 digits.
		if e := maxRel(s.Sigma, dense(t, g, "sigma"+k)); e > 1e-10 {
			t.Errorf("set %s: sigma differs from numpy.cov by %g (relative to max)", k, e)
		}
		// float32 input path.
		f32 := make([]float32, len(data))
		for i, v := range data {
			f32[i] = float32(v)
		}
		c := NewAccumulator(d)
		c.AddBatch32(f32)
		s32, _ := c.Stats()
		if k == "1" {
			if e := maxRel(s32.Sigma, dense(t, g, "sigma"+k)); e > 1e-6 {
				t.Errorf("float32 path: sigma differs by %g", e)
			}
		}
	}
}

func TestFrechetGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		tol  float64 // relative to max(|fd|, Tr Σ₁ + Tr Σ₂)
	}{
		{"full", 1e-9},
		{"near_singular", 1e-7},
		{"identical", 1e-9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := loadNPZ(t, "frechet_"+tc.name+".npz")
			a, b := stats(t, g, "mu1", "sigma1"), stats(t, g, "mu2", "sigma2")
			want := scalar(t, g, "fd")
			r, err := Frechet(a, b, DefaultFrechetEps)
			if err != nil {
				t.Fatal(err)
			}
			if r.EpsAdded {
				t.Error("eps offset added; scipy did not need it")
			}
			scale := math.Max(math.Abs(want), mat.Trace(a.Sigma)+mat.Trace(b.Sigma))
			e := math.Abs(r.Distance-want) / scale
			t.Logf("fd %.15g scipy %.15g: |diff|/scale %.3g (fd relative %.3g), trace sqrt %.15g scipy %.15g, max|Im diag| %.3g",
				r.Distance, want, e, relErr(r.Distance, want, 1e-300), r.TraceSqrt, scalar(t, g, "trace_sqrt"), r.MaxImagDiag)
			if e > tc.tol {
				t.Errorf("fd %v, scipy %v: error %g > %g", r.Distance, want, e, tc.tol)
			}
			if tc.name != "identical" && relErr(r.Distance, want, 1e-300) > 1e-6 {
				t.Errorf("fd %v, scipy %v: more than 1e-6 relative", r.Distance, want)
			}
			f, err := FrechetSymmetric(a, b)
			if err != nil {
				t.Fatal(err)
			}
			es := math.Abs(f.Distance-want) / scale
			t.Logf("FrechetSymmetric: fd %.15g: |diff|/scale %.3g (fd relative %.3g)", f.Distance, es, relErr(f.Distance, want, 1e-300))
			if es > tc.tol*10 {
				t.Errorf("FrechetSymmetric: fd %v, scipy %v: error %g > %g", f.Distance, want, es, tc.tol*10)
			}
			if tc.name != "identical" && relErr(f.Distance, want, 1e-300) > 1e-6 {
				t.Errorf("FrechetSymmetric: fd %v, scipy %v: more than 1e-6 relative", f.Distance, want)
			}
		})
	}
}

func TestFrechetEpsPath(t *testing.T) {
	g := loadNPZ(t, "frechet_eps.npz")
	a, b := stats(t, g, "mu1", "sigma1"), stats(t, g, "mu2", "sigma2")
	// scipy's sqrtm fails on Σ₁Σ₂ (Jordan block at 0); with the offset the
	// root has a large imaginary diagonal, so pytorch-fid raises.
	r, err := Frechet(a, b, DefaultFrechetEps)
	if err == nil || !strings.Contains(err.Error(), "imaginary") {
		t.Fatalf("want an imaginary-component error, got %v (result %+v)", err, r)
	}
	if !r.EpsAdded {
		t.Error("eps offset not reported")
	}
	want := scalar(t, g, "max_imag_diag")
	if e := relErr(r.MaxImagDiag, want, 1e-300); e > 1e-6 {
		t.Errorf("max |Im diag| %v, scipy %v", r.MaxImagDiag, want)
	}
	// The offset product's root itself matches scipy.
	n := a.Dim()
	s1, s2 := mat.DenseCopyOf(a.Sigma), mat.DenseCopyOf(b.Sigma)
	for i := 0; i < n; i++ {
		s1.Set(i, i, s1.At(i, i)+DefaultFrechetEps)
		s2.Set(i, i, s2.At(i, i)+DefaultFrechetEps)
	}
	var p mat.Dense
	p.Mul(s1, s2)
	re, im, err := Sqrtm(&p)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRel(re, dense(t, g, "sqrt_re")); e > 1e-6 {
		t.Errorf("Re sqrtm differs from scipy by %g", e)
	}
	if im == nil {
		t.Fatal("root should be complex")
	}
	if e := maxRel(im, dense(t, g, "sqrt_im")); e > 1e-6 {
		t.Errorf("Im sqrtm differs from scipy by %g", e)
	}
	// Without the offset, Sqrtm reports scipy's failure.
	var p0 mat.Dense
	p0.Mul(a.Sigma, b.Sigma)
	if _, _, err := Sqrtm(&p0); err == nil {
		t.Error("Sqrtm of the singular product should fail")
	}
}

func TestSqrtmGolden(t *testing.T) {
	g := loadNPZ(t, "sqrtm.npz")
	for k := 0; ; k++ {
		key := func(p string) string { return p + "_" + string(rune('0'+k)) }
		if _, ok := g[key("a")]; !ok {
			if k == 0 {
				t.Fatal("no matrices")
			}
			break
		}
		a := dense(t, g, key("a"))
		re, im, err := Sqrtm(a)
		if err != nil {
			t.Fatalf("matrix %d: %v", k, err)
		}
		wantIm := dense(t, g, key("im"))
		wantRe := dense(t, g, key("re"))
		n, _ := a.Dims()
		var imz mat.Matrix = mat.NewDense(n, n, nil)
		if im != nil {
			imz = im
		}
		scale := math.Max(mat.Norm(wantRe, math.Inf(1)), mat.Norm(wantIm, math.Inf(1)))
		var d1, d2 mat.Dense
		d1.Sub(re, wantRe)
		d2.Sub(imz, wantIm)
		e := math.Max(mat.Norm(&d1, math.Inf(1)), mat.Norm(&d2, math.Inf(1))) / scale
		t.Logf("matrix %d (%dx%d): complex %v, max error / norm %.3g", k, n, n, im != nil, e)
		if e > 1e-10 {
			t.Errorf("matrix %d: sqrtm differs from scipy by %g", k, e)
		}
		// The root squares back to a: (re + i·im)² = re² - im² + i(re·im + im·re).
		var rr, ii, back mat.Dense
		rr.Mul(re, re)
		ii.Mul(imz, imz)
		back.Sub(&rr, &ii)
		if e := maxRel(&back, a); e > 1e-10 {
			t.Errorf("matrix %d: sqrtm² differs from a by %g", k, e)
		}
	}
}

func TestCleanFIDStatsFile(t *testing.T) {
	s, err := ReadStats(filepath.Join("testdata", "stats_cleanfid.npz"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Dim() != 6 {
		t.Fatalf("dim %d", s.Dim())
	}
	// Frechet distance of a stats file with itself is 0 up to rounding.
	d, err := FrechetDistance(s, s)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(d) > 1e-12*mat.Trace(s.Sigma) {
		t.Errorf("FD(s, s) = %g", d)
	}
	// Round trip through WriteStats.
	path := filepath.Join(t.TempDir(), "s.npz")
	if err := WriteStats(path, s); err != nil {
		t.Fatal(err)
	}
	s2, err := ReadStats(path)
	if err != nil {
		t.Fatal(err)
	}
	if !mat.Equal(s.Sigma, s2.Sigma) || len(s2.Mu) != len(s.Mu) {
		t.Fatal("round trip changed the statistics")
	}
	for i := range s.Mu {
		if s.Mu[i] != s2.Mu[i] {
			t.Fatal("round trip changed mu")
		}
	}
}

func TestKIDGolden(t *testing.T) {
	g := loadNPZ(t, "kid.npz")
	x, y := dense(t, g, "x"), dense(t, g, "y")
	ix, iy := dense(t, g, "ix"), dense(t, g, "iy")
	want := get(t, g, "mmd2").Data
	subsets, m := ix.Dims()
	_, d := x.Dims()
	var mean float64
	for s := 0; s < subsets; s++ {
		sx, sy := mat.NewDense(m, d, nil), mat.NewDense(m, d, nil)
		for i := 0; i < m; i++ {
			sx.SetRow(i, mat.Row(nil, int(ix.At(s, i)), x))
			sy.SetRow(i, mat.Row(nil, int(iy.At(s, i)), y))
		}
		v, err := MMD2Unbiased(sx, sy)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(v-want[s]) > 1e-12*math.Max(1, math.Abs(want[s])) {
			t.Errorf("subset %d: MMD² %v, numpy %v", s, v, want[s])
		}
		mean += v
	}
	mean /= float64(subsets)
	if math.Abs(mean-scalar(t, g, "kid")) > 1e-12 {
		t.Errorf("KID %v, numpy %v", mean, scalar(t, g, "kid"))
	}
	full, err := MMD2Unbiased(x.Slice(0, 40, 0, d), y.Slice(0, 40, 0, d))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(full-scalar(t, g, "mmd2_full")) > 1e-12 {
		t.Errorf("MMD² on 40 rows %v, numpy %v", full, scalar(t, g, "mmd2_full"))
	}
	// KID itself: with subsets as large as the smaller set (40), every round
	// takes all of x, so it is close to the full-x estimate.
	r, err := KID(x, y, KIDOptions{NumSubsets: 20, SubsetSize: 1000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r.SubsetSize != 40 {
		t.Errorf("subset size %d, want min(1000, 40, 50) = 40", r.SubsetSize)
	}
	r2, _ := KID(x, y, KIDOptions{NumSubsets: 20, SubsetSize: 1000, Seed: 7})
	if r2 != r {
		t.Error("KID is not deterministic for a fixed seed")
	}
	if !(r.Mean > 0) || r.Std < 0 {
		t.Errorf("KID %+v implausible", r)
	}
	t.Logf("KID %+v (golden subset mean %v)", r, scalar(t, g, "kid"))
}

func grayFrom(t *testing.T, g map[string]*Array, key string, scale float64) Gray {
	a := get(t, g, key)
	if len(a.Shape) != 2 {
		t.Fatalf("%s: shape %v", key, a.Shape)
	}
	img := Gray{H: a.Shape[0], W: a.Shape[1], Pix: make([]float64, len(a.Data))}
	for i, v := range a.Data {
		img.Pix[i] = v * scale
	}
	return img
}

func TestSSIMGolden(t *testing.T) {
	g := loadNPZ(t, "ssim.npz")
	x, y, z := grayFrom(t, g, "pair_x", 1), grayFrom(t, g, "pair_y", 1), grayFrom(t, g, "pair_z", 1)
	const tol = 1e-12
	check := func(name string, got float64, err error, key string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := scalar(t, g, key)
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.15g, golden %.15g (diff %.3g)", name, got, want, got-want)
		}
	}
	v, err := SSIM(x, y, 1)
	check("SSIM", v, err, "ssim")
	v, err = SSIM(grayFrom(t, g, "pair_x", 255), grayFrom(t, g, "pair_y", 255), 255)
	check("SSIM range 255", v, err, "ssim_255")
	v, err = MSSSIM(x, y, 1)
	check("MS-SSIM", v, err, "ms_ssim")
	v, err = SSIM(x, z, 1)
	check("SSIM unrelated", v, err, "ssim_xz")
	v, err = MSSSIM(x, z, 1)
	check("MS-SSIM unrelated", v, err, "ms_ssim_xz")
	imgs := make([]Gray, 4)
	for i := range imgs {
		imgs[i] = grayFrom(t, g, "prompt_"+string(rune('0'+i)), 1)
	}
	v, err = PromptDiversity(imgs)
	check("PromptDiversity", v, err, "prompt_diversity")
}
