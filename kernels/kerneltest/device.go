package kerneltest

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// DeviceOps returns Ops that run the kernels of dev behind host slices: each
// call uploads its inputs into fresh device buffers, runs the device's
// kernel, downloads the outputs and frees the buffers. The suite then checks
// any kernels.Device (the CUDA device, the tensor package's simulated one)
// against the references.
//
// caps.Compute chooses the operand types. With F32 every product runs on
// float32 operands, except Mat operands (weights), which keep their own
// dtype. With F16 or BF16 the operands of Gemm, Conv2d and Attention are
// rounded to that type on the host (a weight of the other 16-bit type through
// float32), as a device computing in that type stores them; Gemm's C and
// Conv2d's y stay F32, Attention's o takes the type. The norms and
// elementwise ops run on F32 buffers in every mode. The training kernels
// (BackwardOps, which the returned value implements too) take their tensor
// operands in the compute type in every mode, statistics and parameter
// gradients as F32. An output that is the input slice itself (in-place cases)
// is one device buffer.
//
// Device errors and panics fail the calling test by panicking (the suite runs
// each case in its own subtest).
func DeviceOps[B comparable](dev kernels.Device[B], caps Caps) Ops {
	return &deviceOps[B]{dev: dev, caps: caps}
}

// deviceOps is the Ops of DeviceOps.
type deviceOps[B comparable] struct {
	dev  kernels.Device[B]
	caps Caps
}

func (o *deviceOps[B]) Name() string { return o.dev.Name() }

func (o *deviceOps[B]) Caps() Caps { return o.caps }

func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("kerneltest: device error: %v", err))
	}
}

func (o *deviceOps[B]) alloc(dt kernels.DType, n int) B {
	b, err := o.dev.Alloc(dt, n)
	must(err)
	return b
}

// free frees the buffers that are present (each once).
func (o *deviceOps[B]) free(bs ...B) {
	var zero B
	for i, b := range bs {
		if b == zero {
			continue
		}
		dup := false
		for _, c := range bs[:i] {
			dup = dup || c == b
		}
		if !dup {
			o.dev.Free(b)
		}
	}
}

// upload puts x on the device as dtype dt (rounded on the host); a nil x is
// the absent operand.
func (o *deviceOps[B]) upload(x []float32, dt kernels.DType) B {
	if x == nil {
		var zero B
		return zero
	}
	b := o.alloc(dt, len(x))
	if dt == kernels.F32 {
		must(o.dev.UploadF32(b, x))
		return b
	}
	must(o.dev.UploadU16(b, toHalf(dt, x)))
	return b
}

// download copies the first len(x) elements of b, of dtype dt, into x as float32.
func (o *deviceOps[B]) download(x []float32, b B, dt kernels.DType) {
	if dt == kernels.F32 {
		must(o.dev.DownloadF32(x, b))
		return
	}
	h := make([]uint16, len(x))
	must(o.dev.DownloadU16(h, b))
	if dt == kernels.BF16 {
		cpu.BF16ToF32(x, h)
	} else {
		cpu.F16ToF32(x, h)
	}
}

func toHalf(dt kernels.DType, x []float32) []uint16 {
	h := make([]uint16, len(x))
	if dt == kernels.BF16 {
		cpu.F32ToBF16(h, x)
	} else {
		cpu.F32ToF16(h, x)
	}
	return h
}

// matF32 returns the stored elements of m as float32.
func matF32(m kernels.Mat) []float32 {
	if m.DType == kernels.F32 {
		return m.F32
	}
	f := make([]float32, len(m.U16))
	if m.DType == kernels.BF16 {
		cpu.BF16ToF32(f, m.U16)
	} else {
		cpu.F16ToF32(f, m.U16)
	}
	return f
}

// matDType is the device dtype of a Mat operand: its own in F32 mode, else
// the compute type.
func (o *deviceOps[B]) matDType(m kernels.Mat) kernels.DType {
	if o.caps.Compute == kernels.F32 {
		return m.DType
	}
	return o.caps.Compute
}

// uploadMat puts m on the device in matDType(m).
func (o *deviceOps[B]) uploadMat(m kernels.Mat) kernels.DeviceMat[B] {
	dt := o.matDType(m)
	dm := kernels.DeviceMat[B]{Stride: m.Stride, Trans: m.Trans}
	if dt == m.DType && dt != kernels.F32 {
		dm.Buf = o.alloc(dt, len(m.U16))
		if len(m.U16) > 0 {
			must(o.dev.UploadU16(dm.Buf, m.U16))
		}
		return dm
	}
	f := matF32(m)
	if f == nil {
		f = []float32{}
	}
	dm.Buf = o.upload(f, dt)
	return dm
}

// Gemm runs dev.Gemm with F32 C.
func (o *deviceOps[B]) Gemm(m, n, k int, alpha float32, a, b kernels.Mat, beta float32, c []float32, ldc int) {
	da, db := o.uploadMat(a), o.uploadMat(b)
	dc := o.upload(nonNil(c), kernels.F32)
	must(o.dev.Gemm(kernels.GemmParams[B]{M: m, N: n, K: k, Alpha: alpha, Beta: beta, A: da, B: db, C: dc, Ldc: ldc}))
	o.download(c, dc, kernels.F32)
	o.free(da.Buf, db.Buf, dc)
}

// nonNil returns x, or an empty slice for nil (an operand that is present
// but empty).
func nonNil(x []float32) []float32 {
	if x == nil {
		return []float32{}
	}
	return x
}

// Conv2d runs dev.Conv2d with x in the compute type and F32 y.
func (o *deviceOps[B]) Conv2d(p kernels.ConvParams, x []float32, w kernels.Mat, bias, y []float32) {
	dx, dw := o.upload(nonNil(x), o.caps.Compute), o.uploadMat(w)
	db := o.upload(bias, kernels.F32)
	dy := o.alloc(kernels.F32, len(y))
	must(o.dev.Conv2d(p, dx, dw, db, dy))
	o.download(y, dy, kernels.F32)
	o.free(dx, dw.Buf, db, dy)
}

// Attention runs dev.Attention with every operand in the compute type.
func (o *deviceOps[B]) Attention(p kernels.AttnParams, q, k, v, out []float32) {
	t := o.caps.Compute
	dq, dk, dv, do := o.upload(nonNil(q), t), o.upload(nonNil(k), t), o.upload(nonNil(v), t), o.upload(nonNil(out), t)
	must(o.dev.Attention(p, dq, dk, dv, do))
	o.download(out, do, t)
	o.free(dq, dk, dv, do)
}

func aliased(a, b []float32) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }

// inout uploads x (F32) and returns the device input and output buffers, one
// buffer when y is x.
func (o *deviceOps[B]) inout(x, y []float32) (B, B) {
	dx := o.upload(nonNil(x), kernels.F32)
	if aliased(x, y) {
		return dx, dx
	}
	return dx, o.alloc(kernels.F32, len(y))
}

// finish downloads dy into y and frees dx and dy.
func (o *deviceOps[B]) finish(y []float32, dx, dy B) {
	o.download(y, dy, kernels.F32)
	o.free(dx, dy)
}

// GroupNorm runs dev.GroupNorm on F32 buffers.
func (o *deviceOps[B]) GroupNorm(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool) {
	dx, dy := o.inout(x, y)
	dg, db := o.upload(gamma, kernels.F32), o.upload(beta, kernels.F32)
	must(o.dev.GroupNorm(dx, dy, n, c, hw, groups, eps, dg, db, silu))
	o.finish(y, dx, dy)
	o.free(dg, db)
}

// LayerNorm runs dev.LayerNorm on F32 buffers.
func (o *deviceOps[B]) LayerNorm(x, y []float32, rows, cols int, eps float32, gamma, beta []float32) {
	dx, dy := o.inout(x, y)
	dg, db := o.upload(gamma, kernels.F32), o.upload(beta, kernels.F32)
	must(o.dev.LayerNorm(dx, dy, rows, cols, eps, dg, db))
	o.finish(y, dx, dy)
	o.free(dg, db)
}

// Softmax runs dev.Softmax on F32 buffers.
func (o *deviceOps[B]) Softmax(x, y []float32, rows, cols int) {
	dx, dy := o.inout(x, y)
	must(o.dev.Softmax(dx, dy, rows, cols))
	o.finish(y, dx, dy)
}

// Activate runs dev.Activate over len(x) elements of F32 buffers.
func (o *deviceOps[B]) Activate(f kernels.Activation, x, y []float32) {
	y = y[:len(x)]
	dx, dy := o.inout(x, y)
	must(o.dev.Activate(f, dx, dy, len(x)))
	o.finish(y, dx, dy)
}

// GEGLU runs dev.GEGLU on F32 buffers.
func (o *deviceOps[B]) GEGLU(x, y []float32, rows, d int) {
	y = y[:rows*d]
	dx, dy := o.upload(nonNil(x), kernels.F32), o.alloc(kernels.F32, len(y))
	must(o.dev.GEGLU(dx, dy, rows, d))
	o.finish(y, dx, dy)
}

// Upsample2x runs dev.Upsample2x on F32 buffers.
func (o *deviceOps[B]) Upsample2x(x, y []float32, nc, h, w int) {
	y = y[:4*nc*h*w]
	dx, dy := o.upload(nonNil(x), kernels.F32), o.alloc(kernels.F32, len(y))
	must(o.dev.Upsample2x(dx, dy, nc, h, w))
	o.finish(y, dx, dy)
}

// TimestepEmbedding runs dev.TimestepEmbedding on F32 buffers.
func (o *deviceOps[B]) TimestepEmbedding(t []float32, dim int, flip bool, shift, scale, maxPeriod float32, out []float32) {
	out = out[:len(t)*dim]
	dt, do := o.upload(nonNil(t), kernels.F32), o.alloc(kernels.F32, len(out))
	must(o.dev.TimestepEmbedding(dt, len(t), dim, flip, shift, scale, maxPeriod, do))
	o.finish(out, dt, do)
}
