package tensor

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// The accelerator backend's training-kernel helpers on the simulated device,
// against the kernels/cpu kernels run on the host from the same (rounded)
// inputs. The simulated device runs those very kernels in float32 and rounds
// each result once, so the results must match bit for bit: this checks the
// plumbing (operands, dtypes, absent operands, host ids).
func TestAccelBackwardHelpers(t *testing.T) {
	for i, dt := range []DType{F32, F16, BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			d := openSim(t, 70+i, dt)
			ab := backendFor(d).(*accelBackend[*simBuf])
			r := rand.New(rand.NewSource(int64(80 + i)))
			h := &bwHelper{t: t, d: d, dt: dt, r: r}

			// Convolution: 3x3, stride 2, padding 1.
			p := cpu.ConvParams{N: 2, C: 3, H: 7, W: 6, K: 4, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
			ny, nx, nw := p.N*p.K*p.OutH()*p.OutW(), p.N*p.C*p.H*p.W, p.K*p.C*p.R*p.S
			dy, dyT := h.in(ny)
			x, xT := h.in(nx)
			w, wT := h.in(nw)
			want := make([]float32, nx)
			cpu.Conv2dBackwardData(p, dy, cpu.F32Mat(w, p.C*p.R*p.S, false), want)
			dx := h.out(dt, nx)
			ab.conv2dBackwardData(p, dyT, wT, dx)
			h.same("conv dx", dx, want, dt)
			want = make([]float32, nw)
			cpu.Conv2dBackwardWeight(p, x, dy, want)
			dw := h.out(F32, nw)
			ab.conv2dBackwardWeight(p, xT, dyT, dw)
			h.same("conv dw", dw, want, F32)
			want = make([]float32, p.K)
			cpu.Conv2dBackwardBias(p, dy, want)
			db := h.out(F32, p.K)
			ab.conv2dBackwardBias(p, dyT, db)
			h.same("conv db", db, want, F32)

			// Attention: causal, Sq > Sk (a query without keys), padded o rows.
			ap := cpu.AttnParams{B: 2, H: 2, Sq: 6, Sk: 5, D: 4, Scale: 0.5, Causal: true,
				QStride: 8, KStride: 8, VStride: 8, OStride: 9}
			nq, nk, no, nl := 2*6*8, 2*5*8, 2*6*9, 2*2*6
			q, qT := h.in(nq)
			k, kT := h.in(nk)
			v, vT := h.in(nk)
			wantO, wantL := make([]float32, no), make([]float32, nl)
			cpu.AttentionWithLSE(ap, q, k, v, wantO, wantL)
			oT, lT := h.zeros(dt, no), h.out(F32, nl)
			ab.attentionWithLSE(ap, qT, kT, vT, oT, lT)
			h.same("attention o", oT, wantO, dt)
			h.same("attention lse", lT, wantL, F32)
			o := h.round(wantO, dt)
			do, doT := h.in(no)
			wq, wk, wv := make([]float32, nq), make([]float32, nk), make([]float32, nk)
			cpu.AttentionBackward(ap, do, q, k, v, o, wantL, wq, wk, wv)
			dqT, dkT, dvT := h.zeros(dt, nq), h.zeros(dt, nk), h.zeros(dt, nk)
			ab.attentionBackward(ap, doT, qT, kT, vT, oT, lT, dqT, dkT, dvT)
			h.same("attention dq", dqT, wq, dt)
			h.same("attention dk", dkT, wk, dt)
			h.same("attention dv", dvT, wv, dt)

			// Group norm with SiLU.
			n, c, hw, groups := 2, 6, 5, 3
			m := n * c * hw
			gx, gxT := h.in(m)
			gdy, gdyT := h.in(m)
			gamma, gammaT := h.param(c)
			beta, betaT := h.param(c)
			wantY, mean, rstd := make([]float32, m), make([]float32, n*groups), make([]float32, n*groups)
			cpu.GroupNormSave(gx, wantY, n, c, hw, groups, 1e-5, gamma, beta, true, mean, rstd)
			yT, meanT, rstdT := h.out(dt, m), h.out(F32, n*groups), h.out(F32, n*groups)
			ab.groupNormSave(gxT, yT, n, c, hw, groups, 1e-5, gammaT, betaT, true, meanT, rstdT)
			h.same("groupnorm y", yT, wantY, dt)
			h.same("groupnorm mean", meanT, mean, F32)
			h.same("groupnorm rstd", rstdT, rstd, F32)
			wdx, wdg, wdb := make([]float32, m), make([]float32, c), make([]float32, c)
			cpu.GroupNormBackward(gx, gdy, wdx, n, c, hw, groups, mean, rstd, gamma, beta, true, wdg, wdb)
			dxT, dgT, dbT := h.out(dt, m), h.out(F32, c), h.out(F32, c)
			ab.groupNormBackward(gxT, gdyT, dxT, n, c, hw, groups, meanT, rstdT, gammaT, betaT, true, dgT, dbT)
			h.same("groupnorm dx", dxT, wdx, dt)
			h.same("groupnorm dgamma", dgT, wdg, F32)
			h.same("groupnorm dbeta", dbT, wdb, F32)
			// dx only, without gamma and beta
			cpu.GroupNormBackward(gx, gdy, wdx, n, c, hw, groups, mean, rstd, nil, nil, false, nil, nil)
			ab.groupNormBackward(gxT, gdyT, dxT, n, c, hw, groups, meanT, rstdT, nil, nil, false, nil, nil)
			h.same("groupnorm dx (no params)", dxT, wdx, dt)

			// Layer norm.
			rows, cols := 5, 12
			lx, lxT := h.in(rows * cols)
			ldy, ldyT := h.in(rows * cols)
			lg, lgT := h.param(cols)
			lb, lbT := h.param(cols)
			wantY, mean, rstd = make([]float32, rows*cols), make([]float32, rows), make([]float32, rows)
			cpu.LayerNormSave(lx, wantY, rows, cols, 1e-5, lg, lb, mean, rstd)
			yT, meanT, rstdT = h.out(dt, rows*cols), h.out(F32, rows), h.out(F32, rows)
			ab.layerNormSave(lxT, yT, rows, cols, 1e-5, lgT, lbT, meanT, rstdT)
			h.same("layernorm y", yT, wantY, dt)
			h.same("layernorm mean", meanT, mean, F32)
			h.same("layernorm rstd", rstdT, rstd, F32)
			wdx, wdg, wdb = make([]float32, rows*cols), make([]float32, cols), make([]float32, cols)
			cpu.LayerNormBackward(lx, ldy, wdx, rows, cols, mean, rstd, lg, wdg, wdb)
			dxT, dgT, dbT = h.out(dt, rows*cols), h.out(F32, cols), h.out(F32, cols)
			ab.layerNormBackward(lxT, ldyT, dxT, rows, cols, meanT, rstdT, lgT, dgT, dbT)
			h.same("layernorm dx", dxT, wdx, dt)
			h.same("layernorm dgamma", dgT, wdg, F32)
			h.same("layernorm dbeta", dbT, wdb, F32)

			// Softmax, activation, GEGLU, upsampling.
			sy := make([]float32, rows*cols)
			cpu.Softmax(lx, sy, rows, cols)
			sy = h.round(sy, dt)
			syT := h.dev(sy, dt)
			want = make([]float32, rows*cols)
			cpu.SoftmaxBackward(sy, ldy, want, rows, cols)
			dxT = h.out(dt, rows*cols)
			ab.softmaxBackward(syT, ldyT, dxT, rows, cols)
			h.same("softmax dx", dxT, want, dt)
			for _, f := range []cpu.Activation{cpu.SiLU, cpu.GELU, cpu.GELUTanh, cpu.QuickGELU} {
				cpu.ActivateBackward(f, lx, ldy, want)
				ab.activateBackward(f, lxT, ldyT, dxT)
				h.same(fmt.Sprintf("activation %d dx", f), dxT, want, dt)
			}
			want = make([]float32, rows*cols)
			cpu.GEGLUBackward(lx, ldy[:rows*cols/2], want, rows, cols/2)
			ab.gegluBackward(lxT, ldyT, dxT, rows, cols/2)
			h.same("geglu dx", dxT, want, dt)
			want = make([]float32, rows*cols/4)
			cpu.Upsample2xBackward(lx, want, 5, 1, 3)
			dxT = h.out(dt, rows*cols/4)
			ab.upsample2xBackward(lxT, dxT, 5, 1, 3)
			h.same("upsample dx", dxT, want, dt)

			// Embeddings: ids in host memory.
			ids := []int64{3, 1, 3, 0, 7, 1, 1}
			idsT := FromInt64(ids, len(ids)).ToDevice(d)
			ed, vocab := 5, 8
			edy, edyT := h.in(len(ids) * ed)
			want = make([]float32, vocab*ed)
			cpu.EmbeddingBackward(ids, edy, ed, vocab, want)
			ewT := h.out(F32, vocab*ed)
			ab.embeddingBackward(idsT, edyT, ed, vocab, ewT)
			h.same("embedding dw", ewT, want, F32)
			erows := cpu.EmbeddingGradRows(ids, vocab)
			want = make([]float32, len(erows)*ed)
			cpu.EmbeddingBackwardSparse(ids, edy, ed, erows, want)
			egT := h.out(F32, len(erows)*ed)
			ab.embeddingBackwardSparse(idsT, edyT, ed, erows, egT)
			h.same("embedding sparse grad", egT, want, F32)
			// an id outside the vocabulary is the device's error
			err := Catch(func() { ab.embeddingBackward(idsT, edyT, ed, 4, h.out(F32, 4*ed)) })
			if err == nil || !strings.Contains(err.Error(), "id 7 at position 4 is outside [0, 4)") {
				t.Errorf("id outside the vocabulary: error %v", err)
			}
		})
	}
}

// bwHelper makes the operands of TestAccelBackwardHelpers.
type bwHelper struct {
	t  *testing.T
	d  Device
	dt DType
	r  *rand.Rand
}

// round returns x rounded to dt.
func (h *bwHelper) round(x []float32, dt DType) []float32 {
	return FromFloat32(append([]float32(nil), x...), len(x)).To(dt).Float32s()
}

// dev puts x on the device as dt.
func (h *bwHelper) dev(x []float32, dt DType) *Tensor {
	return FromFloat32(append([]float32(nil), x...), len(x)).To(dt).ToDevice(h.d)
}

// in returns n random values rounded to the compute dtype and the device
// tensor holding them.
func (h *bwHelper) in(n int) ([]float32, *Tensor) {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(h.r.NormFloat64())
	}
	x = h.round(x, h.dt)
	return x, h.dev(x, h.dt)
}

// param returns a random F32 parameter vector and its device tensor.
func (h *bwHelper) param(n int) ([]float32, *Tensor) {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(1 + 0.3*h.r.NormFloat64())
	}
	return x, h.dev(x, F32)
}

// out returns an uninitialised (NaN on the simulated device) tensor of n elements.
func (h *bwHelper) out(dt DType, n int) *Tensor { return newTensor(h.d, dt, Shape{n}, false) }

// zeros returns a zeroed tensor of n elements (outputs with rows' padding).
func (h *bwHelper) zeros(dt DType, n int) *Tensor { return newTensor(h.d, dt, Shape{n}, true) }

// same checks that the device tensor got holds want rounded to dt, bit for bit.
func (h *bwHelper) same(name string, got *Tensor, want []float32, dt DType) {
	h.t.Helper()
	g, w := got.Float32s(), h.round(want, dt)
	for i := range w {
		if math.Float32bits(g[i]) != math.Float32bits(w[i]) && !(g[i] != g[i] && w[i] != w[i]) {
			h.t.Errorf("%s: [%d] = %g, want %g", name, i, g[i], w[i])
			return
		}
	}
}
