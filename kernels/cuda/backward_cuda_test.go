//go:build cuda

// Tests of the training kernels (launch_backward.go) against kernels/cpu's
// float64 references, on small shapes that cross the tiles' edges, in F32 and
// (for the ops with compute-dtype operands) F16 and BF16. Inputs are rounded
// to the dtype on the host before both sides see them, so the differences are
// the kernels' own: the output's rounding (unit roundoff u of its dtype) and
// F32 accumulation. An output element passes when
//
//	|got - want| <= 2u|want| + c * max(u, 2^-20) * max|want|
//
// with c a small per-op constant (c covers accumulation over long sums and,
// for attention, the 16-bit rounding of the saved output o). Run without a GPU:
//
//	scripts/emu-cuda.sh -run 'Backward|WithLSE|NormSave' kernels/cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

var bwDTypes = []kernels.DType{kernels.F32, kernels.F16, kernels.BF16}

// bwUnit is the unit roundoff of dtype t.
func bwUnit(t kernels.DType) float64 {
	switch t {
	case kernels.F16:
		return 0x1p-11
	case kernels.BF16:
		return 0x1p-8
	}
	return 0x1p-24
}

// bwRound returns x rounded to dtype t (as float32 values).
func bwRound(x []float32, t kernels.DType) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		switch t {
		case kernels.F16:
			out[i] = cpu.F16ToF32Scalar(cpu.F32ToF16Scalar(v))
		case kernels.BF16:
			out[i] = cpu.BF16ToF32Scalar(cpu.F32ToBF16Scalar(v))
		default:
			out[i] = v
		}
	}
	return out
}

// bwUp uploads x as a new buffer of dtype t (nil for a nil x).
func bwUp(t *testing.T, x []float32, dt kernels.DType) *Buffer {
	t.Helper()
	if x == nil {
		return nil
	}
	b, err := testDev.Alloc(dt, len(x))
	if err != nil {
		t.Fatal(err)
	}
	if len(x) == 0 {
		return b
	}
	switch dt {
	case kernels.F32:
		err = testDev.UploadF32(b, x)
	case kernels.F16:
		h := make([]uint16, len(x))
		cpu.F32ToF16(h, x)
		err = testDev.UploadU16(b, h)
	default:
		h := make([]uint16, len(x))
		cpu.F32ToBF16(h, x)
		err = testDev.UploadU16(b, h)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bwOut allocates an output buffer of n elements, filled with NaN so that
// unwritten elements show.
func bwOut(t *testing.T, dt kernels.DType, n int) *Buffer {
	t.Helper()
	nan := make([]float32, n)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	return bwUp(t, nan, dt)
}

// bwDown downloads b as float32.
func bwDown(t *testing.T, b *Buffer) []float32 {
	t.Helper()
	out := make([]float32, b.n)
	var err error
	if b.dtype == kernels.F32 {
		err = testDev.DownloadF32(out, b)
	} else {
		h := make([]uint16, b.n)
		if err = testDev.DownloadU16(h, b); err == nil {
			if b.dtype == kernels.F16 {
				cpu.F16ToF32(out, h)
			} else {
				cpu.BF16ToF32(out, h)
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func bwFree(bs ...*Buffer) {
	for _, b := range bs {
		if b != nil {
			b.Free()
		}
	}
}

func bwRand(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// bwCheck compares got with want (see the file comment) and reports the worst
// element and the first mismatches. idx, when not nil, selects the elements
// compared.
func bwCheck(t *testing.T, name string, got, want []float32, dt kernels.DType, c float64, idx []int) {
	t.Helper()
	if idx == nil {
		idx = make([]int, len(want))
		for i := range idx {
			idx[i] = i
		}
	}
	u := bwUnit(dt)
	var mx float64
	for _, i := range idx {
		mx = math.Max(mx, math.Abs(float64(want[i])))
	}
	floor := c * math.Max(u, 0x1p-20) * mx
	bad, worst, wi := 0, 0.0, -1
	for _, i := range idx {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		tol := 2*u*math.Abs(w) + floor
		if math.IsNaN(g) != math.IsNaN(w) || (!math.IsNaN(w) && !(d <= tol)) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %g, want %g (diff %.3g, tol %.3g)", name, i, g, w, d, tol)
			}
			bad++
		}
		if d/(tol+1e-300) > worst {
			worst, wi = d/(tol+1e-300), i
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements outside tolerance", name, bad, len(idx))
	}
	if wi >= 0 {
		t.Logf("%s: max |diff|/tol %.3f at %d (max |want| %.3g)", name, worst, wi, mx)
	}
}

func bwSync(t *testing.T) {
	t.Helper()
	if err := testDev.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------

func TestConv2dBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	cases := []kernels.ConvParams{
		{N: 2, C: 5, H: 9, W: 7, K: 70, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 1, C: 66, H: 8, W: 9, K: 3, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 2, C: 7, H: 5, W: 6, K: 9, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 2, C: 3, H: 24, W: 24, K: 4, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, // split reduction
		{N: 1, C: 2, H: 7, W: 8, K: 3, R: 2, S: 3, StrideH: 2, StrideW: 1, PadH: 0, PadW: 2},
	}
	for ci, p := range cases {
		for _, dt := range bwDTypes {
			if dt != kernels.F32 && ci > 1 {
				continue
			}
			t.Run(fmt.Sprintf("%d/%v", ci, dt), func(t *testing.T) {
				oh, ow := p.OutH(), p.OutW()
				crs := p.C * p.R * p.S
				ldw := crs + 3 // padded weight rows
				x := bwRound(bwRand(r, p.N*p.C*p.H*p.W, -1, 1), dt)
				dy := bwRound(bwRand(r, p.N*p.K*oh*ow, -1, 1), dt)
				w := bwRound(bwRand(r, (p.K-1)*ldw+crs, -1, 1), dt)
				wantDX := make([]float32, len(x))
				cpu.Conv2dBackwardDataRef(p, dy, kernels.F32Mat(w, ldw, false), wantDX)
				wantDW := make([]float32, p.K*crs)
				cpu.Conv2dBackwardWeightRef(p, x, dy, wantDW)
				wantDB := make([]float32, p.K)
				cpu.Conv2dBackwardBiasRef(p, dy, wantDB)

				bx, bdy, bw := bwUp(t, x, dt), bwUp(t, dy, dt), bwUp(t, w, dt)
				bdx := bwOut(t, dt, len(x))
				bdw := bwOut(t, kernels.F32, p.K*crs)
				bdb := bwOut(t, kernels.F32, p.K)
				defer bwFree(bx, bdy, bw, bdx, bdw, bdb)
				if err := testDev.Conv2dBackwardData(p, bdy, Mat{Buf: bw, Stride: ldw}, bdx); err != nil {
					t.Fatal(err)
				}
				if err := testDev.Conv2dBackwardWeight(p, bx, bdy, bdw); err != nil {
					t.Fatal(err)
				}
				if err := testDev.Conv2dBackwardBias(p, bdy, bdb); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				bwCheck(t, "dx", bwDown(t, bdx), wantDX, dt, 4, nil)
				bwCheck(t, "dw", bwDown(t, bdw), wantDW, kernels.F32, 8, nil)
				bwCheck(t, "db", bwDown(t, bdb), wantDB, kernels.F32, 8, nil)
			})
		}
	}
}

// ---------------------------------------------------------------------------

// bwAttnRows returns the indices of the H*D columns of each of the rows of an
// attention operand (the elements the kernels write).
func bwAttnRows(p kernels.AttnParams, seq, stride int) []int {
	var idx []int
	for row := 0; row < p.B*seq; row++ {
		for c := 0; c < p.H*p.D; c++ {
			idx = append(idx, row*stride+c)
		}
	}
	return idx
}

func bwAttnLen(p kernels.AttnParams, seq, stride int) int {
	return (p.B*seq-1)*stride + p.H*p.D
}

func TestAttentionWithLSEAndBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	type tc struct {
		p   kernels.AttnParams
		dts []kernels.DType
	}
	all := bwDTypes
	f32 := []kernels.DType{kernels.F32}
	cases := []tc{
		{kernels.AttnParams{B: 2, H: 2, Sq: 37, Sk: 45, D: 40}, all},
		{kernels.AttnParams{B: 1, H: 2, Sq: 45, Sk: 37, D: 40, Causal: true}, all}, // rows with no key
		{kernels.AttnParams{B: 1, H: 1, Sq: 33, Sk: 70, D: 64, Causal: true}, f32},
		{kernels.AttnParams{B: 1, H: 2, Sq: 20, Sk: 35, D: 80, QStride: 3 * 160, KStride: 3 * 160, VStride: 3 * 160}, f32},
		{kernels.AttnParams{B: 1, H: 1, Sq: 17, Sk: 19, D: 160, Causal: true}, all},
		{kernels.AttnParams{B: 1, H: 1, Sq: 9, Sk: 13, D: 200, OStride: 203}, f32},
		{kernels.AttnParams{B: 1, H: 3, Sq: 5, Sk: 3, D: 7}, f32},
	}
	for ci, c := range cases {
		for _, dt := range c.dts {
			p := c.p
			p.Scale = float32(1 / math.Sqrt(float64(p.D)))
			t.Run(fmt.Sprintf("%d/D%d/%v", ci, p.D, dt), func(t *testing.T) {
				qs, ks, vs, os := p.Strides()
				q := bwRound(bwRand(r, bwAttnLen(p, p.Sq, qs), -2, 2), dt)
				k := bwRound(bwRand(r, bwAttnLen(p, p.Sk, ks), -2, 2), dt)
				v := bwRound(bwRand(r, bwAttnLen(p, p.Sk, vs), -1, 1), dt)
				do := bwRound(bwRand(r, bwAttnLen(p, p.Sq, os), -1, 1), dt)
				nl := p.B * p.H * p.Sq
				wantO := make([]float32, bwAttnLen(p, p.Sq, os))
				wantL := make([]float32, nl)
				cpu.AttentionWithLSERef(p, q, k, v, wantO, wantL)

				bq, bk, bv, bdo := bwUp(t, q, dt), bwUp(t, k, dt), bwUp(t, v, dt), bwUp(t, do, dt)
				bo := bwOut(t, dt, len(wantO))
				bl := bwOut(t, kernels.F32, nl)
				defer bwFree(bq, bk, bv, bdo, bo, bl)
				if err := testDev.AttentionWithLSE(p, bq, bk, bv, bo, bl); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				gotO := bwDown(t, bo)
				bwCheck(t, "o", gotO, wantO, dt, 4, bwAttnRows(p, p.Sq, os))
				gotL := bwDown(t, bl)
				var fin []int
				for i, l := range wantL {
					if math.IsInf(float64(l), -1) {
						if !math.IsInf(float64(gotL[i]), -1) {
							t.Errorf("lse[%d] = %g, want -Inf", i, gotL[i])
						}
						continue
					}
					fin = append(fin, i)
				}
				bwCheck(t, "lse", gotL, wantL, kernels.F32, 16, fin)

				wantDQ := make([]float32, len(q))
				wantDK := make([]float32, len(k))
				wantDV := make([]float32, len(v))
				cpu.AttentionBackwardRef(p, do, q, k, v, nil, nil, wantDQ, wantDK, wantDV)
				bdq, bdk, bdv := bwOut(t, dt, len(q)), bwOut(t, dt, len(k)), bwOut(t, dt, len(v))
				defer bwFree(bdq, bdk, bdv)
				// The backward reads the kernel's own o and lse, as in training.
				if err := testDev.AttentionBackward(p, bdo, bq, bk, bv, bo, bl, bdq, bdk, bdv); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				cc := 4.0 // the 16-bit o enters D = rowsum(dO*o)
				bwCheck(t, "dq", bwDown(t, bdq), wantDQ, dt, cc, bwAttnRows(p, p.Sq, qs))
				bwCheck(t, "dk", bwDown(t, bdk), wantDK, dt, cc, bwAttnRows(p, p.Sk, ks))
				bwCheck(t, "dv", bwDown(t, bdv), wantDV, dt, cc, bwAttnRows(p, p.Sk, vs))
			})
		}
	}
}

// ---------------------------------------------------------------------------

func TestGroupNormSaveAndBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	type tc struct {
		n, c, hw, groups int
		affine, silu     bool
		offset           float64
	}
	cases := []tc{
		{2, 12, 37, 3, true, false, 0},
		{2, 12, 37, 3, true, true, 0},
		{1, 6, 5, 6, false, true, 0},
		{2, 8, 1500, 2, true, true, 0}, // chunked statistics
		{1, 4, 300, 2, true, false, 1000},
	}
	for ci, c := range cases {
		for _, dt := range bwDTypes {
			t.Run(fmt.Sprintf("%d/%v", ci, dt), func(t *testing.T) {
				total := c.n * c.c * c.hw
				x := bwRound(bwRand(r, total, c.offset-1.5, c.offset+1.5), dt)
				dy := bwRound(bwRand(r, total, -1, 1), dt)
				var gamma, beta []float32
				if c.affine {
					gamma, beta = bwRand(r, c.c, 0.5, 1.5), bwRand(r, c.c, -0.5, 0.5)
				}
				ng := c.n * c.groups
				const eps = 1e-5
				wantY := make([]float32, total)
				wantM, wantR := make([]float32, ng), make([]float32, ng)
				cpu.GroupNormSaveRef(x, wantY, c.n, c.c, c.hw, c.groups, eps, gamma, beta, c.silu, wantM, wantR)
				bx, bdy := bwUp(t, x, dt), bwUp(t, dy, dt)
				bg, bb := bwUp(t, gamma, kernels.F32), bwUp(t, beta, kernels.F32)
				by := bwOut(t, dt, total)
				bm, br := bwOut(t, kernels.F32, ng), bwOut(t, kernels.F32, ng)
				defer bwFree(bx, bdy, bg, bb, by, bm, br)
				if err := testDev.GroupNormSave(bx, by, c.n, c.c, c.hw, c.groups, eps, bg, bb, c.silu, bm, br); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				bwCheck(t, "y", bwDown(t, by), wantY, dt, 8, nil)
				gotM, gotR := bwDown(t, bm), bwDown(t, br)
				bwCheck(t, "mean", gotM, wantM, kernels.F32, 32, nil)
				bwCheck(t, "rstd", gotR, wantR, kernels.F32, 8, nil)

				// Backward from the kernel's statistics (the reference uses the same).
				wantDX := make([]float32, total)
				wantDG, wantDB := make([]float32, c.c), make([]float32, c.c)
				cpu.GroupNormBackwardRef(x, dy, wantDX, c.n, c.c, c.hw, c.groups, gotM, gotR, gamma, beta, c.silu, wantDG, wantDB)
				bdx := bwOut(t, dt, total)
				bdg, bdb := bwOut(t, kernels.F32, c.c), bwOut(t, kernels.F32, c.c)
				defer bwFree(bdx, bdg, bdb)
				if err := testDev.GroupNormBackward(bx, bdy, bdx, c.n, c.c, c.hw, c.groups, bm, br, bg, bb, c.silu, bdg, bdb); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				bwCheck(t, "dx", bwDown(t, bdx), wantDX, dt, 32, nil)
				bwCheck(t, "dgamma", bwDown(t, bdg), wantDG, kernels.F32, 16, nil)
				bwCheck(t, "dbeta", bwDown(t, bdb), wantDB, kernels.F32, 16, nil)

				// dx in place of dy, no parameter gradients.
				if dt == kernels.F32 && ci == 1 {
					if err := testDev.GroupNormBackward(bx, bdy, bdy, c.n, c.c, c.hw, c.groups, bm, br, bg, bb, c.silu, nil, nil); err != nil {
						t.Fatal(err)
					}
					bwSync(t)
					bwCheck(t, "dx in place", bwDown(t, bdy), wantDX, dt, 32, nil)
				}
			})
		}
	}
}

func TestLayerNormSaveAndBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(47, 48))
	type tc struct {
		rows, cols int
		affine     bool
		offset     float64
	}
	cases := []tc{{37, 70, true, 0}, {300, 40, true, 0}, {5, 3, false, 0}, {9, 64, true, 500}}
	for ci, c := range cases {
		for _, dt := range bwDTypes {
			t.Run(fmt.Sprintf("%d/%v", ci, dt), func(t *testing.T) {
				n := c.rows * c.cols
				x := bwRound(bwRand(r, n, c.offset-2, c.offset+2), dt)
				dy := bwRound(bwRand(r, n, -1, 1), dt)
				var gamma, beta []float32
				if c.affine {
					gamma, beta = bwRand(r, c.cols, 0.5, 1.5), bwRand(r, c.cols, -0.5, 0.5)
				}
				const eps = 1e-5
				wantY := make([]float32, n)
				wantM, wantR := make([]float32, c.rows), make([]float32, c.rows)
				cpu.LayerNormSaveRef(x, wantY, c.rows, c.cols, eps, gamma, beta, wantM, wantR)
				bx, bdy := bwUp(t, x, dt), bwUp(t, dy, dt)
				bg, bb := bwUp(t, gamma, kernels.F32), bwUp(t, beta, kernels.F32)
				by := bwOut(t, dt, n)
				bm, br := bwOut(t, kernels.F32, c.rows), bwOut(t, kernels.F32, c.rows)
				defer bwFree(bx, bdy, bg, bb, by, bm, br)
				if err := testDev.LayerNormSave(bx, by, c.rows, c.cols, eps, bg, bb, bm, br); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				bwCheck(t, "y", bwDown(t, by), wantY, dt, 8, nil)
				gotM, gotR := bwDown(t, bm), bwDown(t, br)
				bwCheck(t, "mean", gotM, wantM, kernels.F32, 32, nil)
				bwCheck(t, "rstd", gotR, wantR, kernels.F32, 8, nil)

				wantDX := make([]float32, n)
				wantDG, wantDB := make([]float32, c.cols), make([]float32, c.cols)
				cpu.LayerNormBackwardRef(x, dy, wantDX, c.rows, c.cols, gotM, gotR, gamma, wantDG, wantDB)
				bdx := bwOut(t, dt, n)
				bdg, bdb := bwOut(t, kernels.F32, c.cols), bwOut(t, kernels.F32, c.cols)
				defer bwFree(bdx, bdg, bdb)
				if err := testDev.LayerNormBackward(bx, bdy, bdx, c.rows, c.cols, bm, br, bg, bdg, bdb); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				bwCheck(t, "dx", bwDown(t, bdx), wantDX, dt, 32, nil)
				bwCheck(t, "dgamma", bwDown(t, bdg), wantDG, kernels.F32, 16, nil)
				bwCheck(t, "dbeta", bwDown(t, bdb), wantDB, kernels.F32, 16, nil)
				if dt == kernels.F32 && ci == 0 { // dx in place of dy, with parameter gradients
					if err := testDev.LayerNormBackward(bx, bdy, bdy, c.rows, c.cols, bm, br, bg, bdg, bdb); err != nil {
						t.Fatal(err)
					}
					bwSync(t)
					bwCheck(t, "dx in place", bwDown(t, bdy), wantDX, dt, 32, nil)
					bwCheck(t, "dgamma (dx in place)", bwDown(t, bdg), wantDG, kernels.F32, 16, nil)
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------

func TestSoftmaxBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(49, 50))
	const rows, cols = 13, 70
	for _, dt := range bwDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			x := bwRand(r, rows*cols, -3, 3)
			y := make([]float32, len(x))
			cpu.SoftmaxRef(x, y, rows, cols)
			y = bwRound(y, dt)
			dy := bwRound(bwRand(r, rows*cols, -1, 1), dt)
			want := make([]float32, len(y))
			cpu.SoftmaxBackwardRef(y, dy, want, rows, cols)
			by, bdy, bdx := bwUp(t, y, dt), bwUp(t, dy, dt), bwOut(t, dt, len(y))
			defer bwFree(by, bdy, bdx)
			if err := testDev.SoftmaxBackward(by, bdy, bdx, rows, cols); err != nil {
				t.Fatal(err)
			}
			// in place of dy
			if err := testDev.SoftmaxBackward(by, bdy, bdy, rows, cols); err != nil {
				t.Fatal(err)
			}
			bwSync(t)
			bwCheck(t, "dx", bwDown(t, bdx), want, dt, 4, nil)
			bwCheck(t, "dx in place", bwDown(t, bdy), want, dt, 4, nil)
		})
	}
}

func TestActivateBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	x := bwRand(r, 700, -6, 6)
	inf := float32(math.Inf(1))
	x = append(x, -30, -12, -9, -5.5, 0, 1e-3, 9, 12, 30, inf, -inf)
	for _, f := range []kernels.Activation{kernels.Identity, kernels.SiLU, kernels.GELU, kernels.GELUTanh, kernels.QuickGELU} {
		for _, dt := range bwDTypes {
			t.Run(fmt.Sprintf("%d/%v", f, dt), func(t *testing.T) {
				xr := bwRound(x, dt)
				dy := bwRound(bwRand(r, len(x), -1, 1), dt)
				want := make([]float32, len(x))
				cpu.ActivateBackwardRef(f, xr, dy, want)
				bx, bdy, bdx := bwUp(t, xr, dt), bwUp(t, dy, dt), bwOut(t, dt, len(x))
				defer bwFree(bx, bdy, bdx)
				if err := testDev.ActivateBackward(f, bx, bdy, bdx, len(x)); err != nil {
					t.Fatal(err)
				}
				bwSync(t)
				// Elementwise: the output's rounding (and half the F16
				// subnormal spacing), plus a few F32 ulps of the derivative's
				// terms (each at most about 1 in size; near a zero of f' they
				// cancel).
				got := bwDown(t, bdx)
				u := bwUnit(dt)
				sub := 0.0
				if dt == kernels.F16 {
					sub = 0x1p-25
				}
				for i := range want {
					g, w := float64(got[i]), float64(want[i])
					if !(math.Abs(g-w) <= 2*u*math.Abs(w)+sub+16*0x1p-24*math.Abs(float64(dy[i]))) {
						t.Errorf("x = %g: dx = %g, want %g", xr[i], g, w)
					}
				}
			})
		}
	}
	if err := testDev.ActivateBackward(kernels.Activation(99), nil, nil, nil, 0); err == nil {
		t.Error("unknown activation: no error")
	}
}

func TestGEGLUBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(53, 54))
	const rows, d = 7, 45
	for _, dt := range bwDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			x := bwRound(bwRand(r, rows*2*d, -4, 4), dt)
			dy := bwRound(bwRand(r, rows*d, -1, 1), dt)
			want := make([]float32, len(x))
			cpu.GEGLUBackwardRef(x, dy, want, rows, d)
			bx, bdy, bdx := bwUp(t, x, dt), bwUp(t, dy, dt), bwOut(t, dt, len(x))
			defer bwFree(bx, bdy, bdx)
			if err := testDev.GEGLUBackward(bx, bdy, bdx, rows, d); err != nil {
				t.Fatal(err)
			}
			if err := testDev.GEGLUBackward(bx, bdy, bx, rows, d); err != nil { // in place
				t.Fatal(err)
			}
			bwSync(t)
			bwCheck(t, "dx", bwDown(t, bdx), want, dt, 2, nil)
			bwCheck(t, "dx in place", bwDown(t, bx), want, dt, 2, nil)
		})
	}
}

func TestUpsample2xBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(55, 56))
	const nc, h, w = 3, 5, 7
	for _, dt := range bwDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			dy := bwRound(bwRand(r, nc*4*h*w, -1, 1), dt)
			want := make([]float32, nc*h*w)
			cpu.Upsample2xBackwardRef(dy, want, nc, h, w)
			bdy, bdx := bwUp(t, dy, dt), bwOut(t, dt, len(want))
			defer bwFree(bdy, bdx)
			if err := testDev.Upsample2xBackward(bdy, bdx, nc, h, w); err != nil {
				t.Fatal(err)
			}
			bwSync(t)
			bwCheck(t, "dx", bwDown(t, bdx), want, dt, 2, nil)
		})
	}
}

func TestEmbeddingBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(57, 58))
	const vocab, d = 20, 300
	ids := []int64{3, 7, 3, 19, 0, 7, 7, 12, 3, 5, 19}
	for _, dt := range bwDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			dy := bwRound(bwRand(r, len(ids)*d, -1, 1), dt)
			want := make([]float32, vocab*d)
			cpu.EmbeddingBackwardRef(ids, dy, d, vocab, want)
			bdy, bdw := bwUp(t, dy, dt), bwOut(t, kernels.F32, vocab*d)
			defer bwFree(bdy, bdw)
			if err := testDev.EmbeddingBackward(ids, bdy, d, vocab, bdw); err != nil {
				t.Fatal(err)
			}
			bwSync(t)
			bwCheck(t, "dw", bwDown(t, bdw), want, kernels.F32, 2, nil)

			rows := cpu.EmbeddingGradRows(ids, vocab)
			rows = append(rows, 15) // a row no id uses: zeros
			wantS := make([]float32, len(rows)*d)
			cpu.EmbeddingBackwardSparseRef(ids, dy, d, rows, wantS)
			bg := bwOut(t, kernels.F32, len(rows)*d)
			defer bg.Free()
			if err := testDev.EmbeddingBackwardSparse(ids, bdy, d, rows, bg); err != nil {
				t.Fatal(err)
			}
			bwSync(t)
			bwCheck(t, "sparse", bwDown(t, bg), wantS, kernels.F32, 2, nil)

			if err := testDev.EmbeddingBackward([]int64{1, 20}, bdy, d, vocab, bdw); err == nil {
				t.Error("id out of range: no error")
			}
			if err := testDev.EmbeddingBackwardSparse([]int64{4}, bdy, d, rows, bg); err == nil {
				t.Error("id not among rows: no error")
			}
		})
	}
}

// TestBackwardErrors checks that bad arguments come back as errors.
func TestBackwardErrors(t *testing.T) {
	f16 := bwOut(t, kernels.F16, 64)
	f32 := bwOut(t, kernels.F32, 64)
	defer bwFree(f16, f32)
	p := kernels.ConvParams{N: 1, C: 2, H: 4, W: 4, K: 2, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	ap := kernels.AttnParams{B: 1, H: 1, Sq: 4, Sk: 4, D: 8, Scale: 1}
	cases := []struct {
		name string
		err  error
	}{
		{"conv dw F16", testDev.Conv2dBackwardWeight(p, f32, f32, f16)},
		{"conv nil dy", testDev.Conv2dBackwardData(p, nil, Mat{Buf: f32, Stride: 18}, f32)},
		{"conv short dx", testDev.Conv2dBackwardData(p, f32, Mat{Buf: f32, Stride: 18}, f32.View(0, 10))},
		{"conv bad params", testDev.Conv2dBackwardBias(kernels.ConvParams{N: 1}, f32, f32)},
		{"attn D 300", testDev.AttentionWithLSE(kernels.AttnParams{B: 1, H: 1, Sq: 1, Sk: 1, D: 300}, f32, f32, f32, f32, f32)},
		{"attn mixed dtypes", testDev.AttentionBackward(ap, f32, f32, f16, f32, f32, f32, f32, f32, f32)},
		{"attn lse F16", testDev.AttentionWithLSE(ap, f32, f32, f32, f32, f16)},
		{"groupnorm groups", testDev.GroupNormSave(f32, f32, 1, 6, 2, 4, 1e-5, nil, nil, false, f32, f32)},
		{"groupnorm mean F16", testDev.GroupNormBackward(f32, f32, f32, 1, 4, 2, 2, f16, f32, nil, nil, false, nil, nil)},
		{"layernorm short", testDev.LayerNormBackward(f32, f32, f32, 10, 10, f32, f32, nil, nil, nil)},
		{"softmax cols", testDev.SoftmaxBackward(f32, f32, f32, 1, 0)},
		{"geglu short dx", testDev.GEGLUBackward(f32, f32, f32.View(0, 8), 2, 8)},
		{"upsample short", testDev.Upsample2xBackward(f32, f32, 1, 8, 8)},
		{"embedding dw F16", testDev.EmbeddingBackward([]int64{1}, f32, 4, 4, f16)},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, c.err)
		}
	}
	bwSync(t)
}
