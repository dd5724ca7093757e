//go:build cuda

// GPU tests: they run only in a binary built with -tags cuda on a machine with an
// NVIDIA GPU (gorgonia.org/cu exits the process at start-up otherwise). The
// checks that need no GPU live in ptx_test.go, built without the tag.

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/kernels/kerneltest"
)

var testDev *Device

func TestMain(m *testing.M) {
	ord := 0
	if s := os.Getenv("ROENTGO_CUDA_DEVICE"); s != "" {
		ord, _ = strconv.Atoi(s)
	}
	d, err := Open(ord)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cuda tests:", err)
		os.Exit(1)
	}
	major, minor := d.ComputeCapability()
	fmt.Printf("cuda tests: %s (sm_%d%d, %d SMs, %.1f GiB), driver %d\n",
		d.Model(), major, minor, d.Multiprocessors(), float64(d.TotalMemory())/(1<<30), DriverVersion())
	testDev = d
	code := m.Run()
	if err := d.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "cuda tests: close:", err)
		code = 1
	}
	os.Exit(code)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// ---------------------------------------------------------------------------
// The conformance suite, through kerneltest's upload/run/download adapter.

// conformanceCaps describes the device to the suite: mode F32 runs every
// product in float32 (SIMT kernels, weights in their own dtype); mode F16 or
// BF16 rounds the product operands to that type and takes the tensor-core
// kernels wherever their alignment rules allow (the rest fall back to the SIMT
// kernels on the same 16-bit data). Norms and elementwise ops use the F32
// kernels in every mode; the training kernels (kerneltest.BackwardNames, run
// in every mode) take their tensor operands in the mode's dtype.
func conformanceCaps(mode kernels.DType) kerneltest.Caps {
	return kerneltest.Caps{WeightDTypes: []kernels.DType{kernels.F32, kernels.F16, kernels.BF16}, Compute: mode}
}

func TestConformanceF32(t *testing.T) {
	kerneltest.Run(t, kerneltest.DeviceOps(testDev, conformanceCaps(kernels.F32)), kerneltest.Options{})
}

func TestConformanceF16(t *testing.T) {
	kerneltest.Run(t, kerneltest.DeviceOps(testDev, conformanceCaps(kernels.F16)),
		kerneltest.Options{Ops: append([]string{"Gemm", "Conv2d", "Attention"}, kerneltest.BackwardNames...)})
}

func TestConformanceBF16(t *testing.T) {
	kerneltest.Run(t, kerneltest.DeviceOps(testDev, conformanceCaps(kernels.BF16)),
		kerneltest.Options{Ops: append([]string{"Gemm", "Conv2d", "Attention"}, kerneltest.BackwardNames...)})
}

// ---------------------------------------------------------------------------
// Direct tests of the tensor-core paths and the ops kerneltest does not cover.

func uniform(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(2*r.Float64() - 1)
	}
	return x
}

// round returns x rounded to dtype t (as float32) and its 16-bit bits.
func round(x []float32, t kernels.DType) ([]float32, []uint16) {
	h := make([]uint16, len(x))
	f := make([]float32, len(x))
	if t == kernels.BF16 {
		cpu.F32ToBF16(h, x)
		cpu.BF16ToF32(f, h)
	} else {
		cpu.F32ToF16(h, x)
		cpu.F16ToF32(f, h)
	}
	return f, h
}

func uploadU16(t *testing.T, dt kernels.DType, h []uint16) *Buffer {
	t.Helper()
	b, err := testDev.Alloc(dt, len(h))
	if err != nil {
		t.Fatal(err)
	}
	if err := testDev.UploadU16(b, h); err != nil {
		t.Fatal(err)
	}
	return b
}

func uploadF32(t *testing.T, x []float32) *Buffer {
	t.Helper()
	b, err := testDev.Alloc(kernels.F32, len(x))
	if err != nil {
		t.Fatal(err)
	}
	if err := testDev.UploadF32(b, x); err != nil {
		t.Fatal(err)
	}
	return b
}

// fetch downloads b as float32 (16-bit data converted exactly on the host).
func fetch(t *testing.T, b *Buffer) []float32 {
	t.Helper()
	out := make([]float32, b.n)
	if b.dtype == kernels.F32 {
		if err := testDev.DownloadF32(out, b); err != nil {
			t.Fatal(err)
		}
		return out
	}
	h := make([]uint16, b.n)
	if err := testDev.DownloadU16(h, b); err != nil {
		t.Fatal(err)
	}
	if b.dtype == kernels.BF16 {
		cpu.BF16ToF32(out, h)
	} else {
		cpu.F16ToF32(out, h)
	}
	return out
}

func unit(t kernels.DType) float64 {
	switch t {
	case kernels.F16:
		return 0x1p-11
	case kernels.BF16:
		return 0x1p-8
	}
	return 0x1p-24
}

// TestGemmTensorCore runs the mma.sync GEMM on SD-like awkward shapes (K = 40,
// 80, 160, 320; M, N not multiples of the tiles), both B layouts, both output
// types, with bias (per column and per row), beta, residual and batches, against
// GemmRef on the same rounded operands plus the epilogue in float64.
func TestGemmTensorCore(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{130, 136, 40}, {67, 200, 80}, {129, 72, 160}, {257, 320, 320}, {16, 8, 8}, {1, 1000, 320}}
	for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
		for _, sh := range shapes {
			for _, bt := range []bool{false, true} {
				for _, outHalf := range []bool{false, true} {
					m, n, k := sh[0], sh[1], sh[2]
					name := fmt.Sprintf("%v/%dx%dx%d/bt=%v/oh=%v", dt, m, n, k, bt, outHalf)
					t.Run(name, func(t *testing.T) {
						batch := 1 + len(name)%3
						gemmTCCase(t, r, dt, batch, m, n, k, bt, outHalf)
					})
				}
			}
		}
	}
}

func gemmTCCase(t *testing.T, r *rand.Rand, dt kernels.DType, batch, m, n, k int, bt, outHalf bool) {
	lda, ldb := k, n
	if bt {
		ldb = k
	}
	brows := k
	if bt {
		brows = n
	}
	ldc := n + 8
	sA, sB, sC := m*lda+8, brows*ldb, m*ldc
	af, ah := round(uniform(r, batch*sA), dt)
	bf, bh := round(uniform(r, batch*sB), dt)
	biasRows := m%2 == 1
	bias := uniform(r, map[bool]int{true: m, false: n}[biasRows])
	ct := kernels.F32
	if outHalf {
		ct = dt
	}
	c0 := uniform(r, batch*sC)
	res := uniform(r, batch*sC)
	if outHalf {
		c0, _ = round(c0, dt)
		res, _ = round(res, dt)
	}
	const alpha, beta = 0.5, -1.25
	dA, dB := uploadU16(t, dt, ah), uploadU16(t, dt, bh)
	defer dA.Free()
	defer dB.Free()
	up := func(x []float32) *Buffer {
		if ct == kernels.F32 {
			return uploadF32(t, x)
		}
		_, h := round(x, ct)
		return uploadU16(t, ct, h)
	}
	dC, dR, dBias := up(c0), up(res), uploadF32(t, bias)
	defer dC.Free()
	defer dR.Free()
	defer dBias.Free()
	p := GemmParams{M: m, N: n, K: k, Alpha: alpha, Beta: beta,
		A: Mat{Buf: dA, Stride: lda}, B: Mat{Buf: dB, Stride: ldb, Trans: bt}, C: dC, Ldc: ldc,
		Batch: batch, StrideA: sA, StrideB: sB, StrideC: sC, StrideR: sC,
		Bias: dBias, BiasRows: biasRows, R: dR, Ldr: ldc}
	if !gemmUsesTensorCores(p) {
		t.Fatalf("case does not take the tensor-core path: %+v", p)
	}
	if err := testDev.Gemm(p); err != nil {
		t.Fatal(err)
	}
	got := fetch(t, dC)
	want := make([]float32, len(c0))
	for z := 0; z < batch; z++ {
		a := kernels.F32Mat(af[z*sA:], lda, false)
		b := kernels.F32Mat(bf[z*sB:], ldb, bt)
		prod := make([]float32, m*ldc)
		cpu.GemmRef(m, n, k, 1, a, b, 0, prod, ldc)
		for i := 0; i < m; i++ {
			for j := 0; j < ldc; j++ {
				idx := z*sC + i*ldc + j
				if j >= n {
					want[idx] = c0[idx] // padding untouched
					continue
				}
				var bv float32
				if biasRows {
					bv = bias[i]
				} else {
					bv = bias[j]
				}
				want[idx] = float32(alpha*float64(prod[i*ldc+j]) + float64(bv) + beta*float64(c0[idx]) + float64(res[idx]))
			}
		}
	}
	atol := 4 * 0x1p-24 * float64(k+16) * 4
	rtol := 4 * 0x1p-24
	if outHalf {
		rtol = unit(dt)
		atol += unit(dt)
	}
	kerneltest.CompareShape(t, "Gemm C", []int{batch, m, ldc}, got, want, atol, rtol)
}

// TestConvTensorCore checks the implicit-GEMM tensor-core convolution (3x3 stride
// 1 and 2, 1x1; aligned and unaligned C*R*S; F32 and 16-bit outputs; residual)
// against Conv2dRef on the same rounded inputs.
func TestConvTensorCore(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	P := func(n, c, h, w, k, rs, st, pad int) kernels.ConvParams {
		return kernels.ConvParams{N: n, C: c, H: h, W: w, K: k, R: rs, S: rs, StrideH: st, StrideW: st, PadH: pad, PadW: pad}
	}
	cases := []kernels.ConvParams{
		P(2, 32, 17, 19, 40, 3, 1, 1), P(1, 64, 16, 16, 136, 3, 2, 1), P(2, 3, 12, 9, 20, 3, 1, 1),
		P(2, 40, 9, 11, 72, 1, 1, 0), P(1, 320, 8, 8, 320, 3, 1, 1),
	}
	for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
		for _, p := range cases {
			for _, outHalf := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%+v/oh=%v", dt, p, outHalf), func(t *testing.T) {
					crs := p.C * p.R * p.S
					xf, xh := round(uniform(r, p.N*p.C*p.H*p.W), dt)
					wf, wh := round(uniform(r, p.K*crs), dt)
					bias := uniform(r, p.K)
					ny := p.N * p.K * p.OutH() * p.OutW()
					res := uniform(r, ny)
					yt := kernels.F32
					if outHalf {
						yt = dt
						res, _ = round(res, dt)
					}
					dx, dw, db := uploadU16(t, dt, xh), uploadU16(t, dt, wh), uploadF32(t, bias)
					var dr *Buffer
					if yt == kernels.F32 {
						dr = uploadF32(t, res)
					} else {
						_, rh := round(res, dt)
						dr = uploadU16(t, dt, rh)
					}
					dy, err := testDev.Alloc(yt, ny)
					if err != nil {
						t.Fatal(err)
					}
					defer func() {
						for _, b := range []*Buffer{dx, dw, db, dr, dy} {
							b.Free()
						}
					}()
					if err := testDev.Conv2dEx(p, dx, Mat{Buf: dw, Stride: crs}, db, dr, dy, false); err != nil {
						t.Fatal(err)
					}
					got := fetch(t, dy)
					want := make([]float32, ny)
					cpu.Conv2dRef(p, xf, kernels.F32Mat(wf, crs, false), bias, want)
					for i := range want {
						want[i] += res[i]
					}
					atol := 4 * 0x1p-24 * float64(crs+16) * 4
					rtol := 4 * 0x1p-24
					if outHalf {
						rtol = unit(dt)
						atol += 2 * unit(dt)
					}
					kerneltest.CompareShape(t, "Conv2dEx y", []int{p.N, p.K, p.OutH(), p.OutW()}, got, want, atol, rtol)
				})
			}
		}
	}
}

// TestAttentionTensorCore checks the flash-attention kernels for every head dim
// (self, cross with Sk = 77, causal, padded strides) against AttentionRef on the
// same rounded inputs, and against the SIMT kernel.
func TestAttentionTensorCore(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	type ac struct {
		b, h, sq, sk int
		causal       bool
		pad          int
	}
	cases := []ac{{2, 2, 130, 130, false, 0}, {1, 3, 100, 77, false, 8}, {1, 2, 97, 97, true, 0}, {2, 1, 50, 120, true, 16}, {1, 1, 1, 1, false, 0}}
	for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
		for _, d := range []int{40, 64, 80, 160} {
			for _, c := range cases {
				t.Run(fmt.Sprintf("%v/d%d/%+v", dt, d, c), func(t *testing.T) {
					hd := c.h * d
					p := kernels.AttnParams{B: c.b, H: c.h, Sq: c.sq, Sk: c.sk, D: d, Scale: float32(1 / math.Sqrt(float64(d))),
						Causal: c.causal, QStride: hd + c.pad, KStride: hd + 2*c.pad, VStride: hd, OStride: hd + c.pad}
					qf, qh := round(uniform(r, c.b*c.sq*p.QStride), dt)
					kf, kh := round(uniform(r, c.b*c.sk*p.KStride), dt)
					vf, vh := round(uniform(r, c.b*c.sk*p.VStride), dt)
					osz := c.b * c.sq * p.OStride
					dq, dk, dv := uploadU16(t, dt, qh), uploadU16(t, dt, kh), uploadU16(t, dt, vh)
					do1, _ := testDev.Alloc(dt, osz)
					do2, _ := testDev.Alloc(dt, osz)
					defer func() {
						for _, b := range []*Buffer{dq, dk, dv, do1, do2} {
							b.Free()
						}
					}()
					must(testDev.Zero(do1))
					must(testDev.Zero(do2))
					if err := testDev.Attention(p, dq, dk, dv, do1); err != nil {
						t.Fatal(err)
					}
					if err := testDev.AttentionSIMT(p, dq, dk, dv, do2); err != nil {
						t.Fatal(err)
					}
					got, simt := fetch(t, do1), fetch(t, do2)
					want := make([]float32, osz)
					cpu.AttentionRef(p, qf, kf, vf, want)
					u := unit(dt)
					kerneltest.CompareShape(t, "Attention tc", []int{c.b, c.sq, p.OStride}, got, want, 6*u, 4*u)
					kerneltest.CompareShape(t, "Attention simt", []int{c.b, c.sq, p.OStride}, simt, want, 2*u, 2*u)
				})
			}
		}
	}
}

// TestHalfStorageOps runs the 16-bit variants of the norms and elementwise ops
// against the references on the rounded inputs (one rounding of the output allowed).
func TestHalfStorageOps(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
		u := unit(dt)
		x, xh := round(uniform(r, 2*64*100), dt)
		g, b := uniform(r, 64), uniform(r, 64)
		dx := uploadU16(t, dt, xh)
		dy, _ := testDev.Alloc(dt, len(x))
		dg, db := uploadF32(t, g), uploadF32(t, b)
		want := make([]float32, len(x))
		check := func(name string, atol float64) {
			t.Helper()
			kerneltest.Compare(t, dt.String()+" "+name, fetch(t, dy)[:len(want)], want, atol, 2*u)
		}
		must(testDev.GroupNorm(dx, dy, 2, 64, 100, 32, 1e-5, dg, db, true))
		cpu.GroupNormRef(x, want, 2, 64, 100, 32, 1e-5, g, b, true)
		check("GroupNorm", 1e-5)
		must(testDev.LayerNorm(dx, dy, 200, 64, 1e-5, dg, db))
		cpu.LayerNormRef(x, want, 200, 64, 1e-5, g, b)
		check("LayerNorm", 1e-5)
		must(testDev.Softmax(dx, dy, 100, 128))
		cpu.SoftmaxRef(x, want, 100, 128)
		check("Softmax", 1e-7)
		for _, f := range []kernels.Activation{kernels.SiLU, kernels.GELU, kernels.GELUTanh, kernels.QuickGELU} {
			must(testDev.Activate(f, dx, dy, len(x)))
			cpu.ActivateRef(f, x, want)
			check(fmt.Sprint("Activate ", f), 1e-6)
		}
		must(testDev.GEGLU(dx, dy, 100, 64))
		want = want[:100*64]
		cpu.GEGLURef(x, want, 100, 64)
		check("GEGLU", 1e-6)
		dup, _ := testDev.Alloc(dt, 4*len(x))
		must(testDev.Upsample2x(dx, dup, 128, 10, 10))
		up := make([]float32, 4*len(x))
		cpu.Upsample2xRef(x, up, 128, 10, 10)
		kerneltest.Compare(t, "Upsample2x", fetch(t, dup), up, 0, 0)
		for _, bb := range []*Buffer{dx, dy, dg, db, dup} {
			bb.Free()
		}
	}
}

// TestAddConcatConvert covers Add, AddBroadcast, Concat and the dtype conversions
// (bit-exact against kernels/cpu, special values included).
func TestAddConcatConvert(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const N, C, HW = 2, 5, 7
	a, b := uniform(r, N*C*HW), uniform(r, N*C*HW)
	da, db := uploadF32(t, a), uploadF32(t, b)
	dy, _ := testDev.Alloc(kernels.F32, N*C*HW)
	must(testDev.Add(da, db, dy, 0.5))
	want := make([]float32, N*C*HW)
	for i := range want {
		want[i] = (a[i] + b[i]) * 0.5
	}
	kerneltest.Compare(t, "Add", fetch(t, dy), want, 0, 1e-7)
	bias, temb := uniform(r, C), uniform(r, N*C)
	dbias, dtemb := uploadF32(t, bias), uploadF32(t, temb)
	must(testDev.AddBroadcast(da, dbias, dy, HW, C))
	for i := range want {
		want[i] = a[i] + bias[(i/HW)%C]
	}
	kerneltest.Compare(t, "AddBroadcast channel", fetch(t, dy), want, 0, 0)
	must(testDev.AddBroadcast(da, dtemb, dy, HW, N*C))
	for i := range want {
		want[i] = a[i] + temb[i/HW]
	}
	kerneltest.Compare(t, "AddBroadcast temb", fetch(t, dy), want, 0, 0)
	const cb = 3
	c2 := uniform(r, N*cb*HW)
	dc2 := uploadF32(t, c2)
	dcat, _ := testDev.Alloc(kernels.F32, N*(C+cb)*HW)
	must(testDev.Concat(da, dc2, dcat, N, C, cb, HW))
	cat := make([]float32, 0, N*(C+cb)*HW)
	for n := 0; n < N; n++ {
		cat = append(cat, a[n*C*HW:(n+1)*C*HW]...)
		cat = append(cat, c2[n*cb*HW:(n+1)*cb*HW]...)
	}
	kerneltest.Compare(t, "Concat", fetch(t, dcat), cat, 0, 0)

	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65520, 1e-8, 6e-8, 1e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), 3.14159, -2.71828, 1.00048828125, 1.0009765625}
	vals := append(uniform(r, 1000), special...)
	for i := range vals[:500] {
		vals[i] *= float32(math.Pow(2, float64(r.IntN(60)-30)))
	}
	dv := uploadF32(t, vals)
	for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
		dh, _ := testDev.Alloc(dt, len(vals))
		must(testDev.Convert(dv, dh, len(vals)))
		got := make([]uint16, len(vals))
		must(testDev.DownloadU16(got, dh))
		want := make([]uint16, len(vals))
		if dt == kernels.F16 {
			cpu.F32ToF16(want, vals)
		} else {
			cpu.F32ToBF16(want, vals)
		}
		bad := 0
		for i := range want {
			if got[i] != want[i] {
				if bad < 5 {
					t.Errorf("Convert f32->%v of %g: got %#04x, want %#04x", dt, vals[i], got[i], want[i])
				}
				bad++
			}
		}
		back, _ := testDev.Alloc(kernels.F32, len(vals))
		must(testDev.Convert(dh, back, len(vals)))
		wantBack := make([]float32, len(vals))
		if dt == kernels.F16 {
			cpu.F16ToF32(wantBack, want)
		} else {
			cpu.BF16ToF32(wantBack, want)
		}
		kerneltest.Compare(t, "Convert "+dt.String()+"->f32", fetch(t, back), wantBack, 0, 0)
		dh.Free()
		back.Free()
	}
	for _, bb := range []*Buffer{da, db, dy, dbias, dtemb, dc2, dcat, dv} {
		bb.Free()
	}
}

// TestAllocator checks that a repeated allocation pattern is served from the
// free lists (no new cuMemAlloc after the first round) and that running out of
// memory names the request and the bytes in use.
func TestAllocator(t *testing.T) {
	sizes := []int{1, 1000, 4096, 1 << 20, 3<<20 + 5, 40 << 20}
	round := func() {
		var bs []*Buffer
		for _, n := range sizes {
			b, err := testDev.Alloc(kernels.F16, n)
			if err != nil {
				t.Fatal(err)
			}
			if uintptr(b.ptr)%256 != 0 {
				t.Errorf("buffer of %d elements not 256-byte aligned", n)
			}
			bs = append(bs, b)
		}
		for _, b := range bs {
			b.Free()
		}
	}
	round()
	before := testDev.MemStats()
	for i := 0; i < 5; i++ {
		round()
	}
	after := testDev.MemStats()
	if after.DriverAllocs != before.DriverAllocs {
		t.Errorf("cuMemAlloc calls grew from %d to %d over repeated identical rounds", before.DriverAllocs, after.DriverAllocs)
	}
	if after.InUse != before.InUse {
		t.Errorf("bytes in use %d after the rounds, %d before", after.InUse, before.InUse)
	}
	huge := int(testDev.TotalMemory()) // F32: 4x the device memory
	_, err := testDev.Alloc(kernels.F32, huge)
	if err == nil {
		t.Fatal("allocating 4x the device memory succeeded")
	}
	want := fmt.Sprintf("allocating %d bytes", int64(huge)*4)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("out-of-memory error %q does not name the request (%q) and the bytes in use", err, want)
	}
	t.Logf("allocator: %+v; OOM error: %v", testDev.MemStats(), err)
}
