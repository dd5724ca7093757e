//go:build cuda

package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/kernels/cuda"
)

// The CUDA device: kernels/cuda behind accelDevice. Built only with -tags
// cuda, so that the default build needs no CUDA.

func init() {
	openers[KindCUDA] = func(i int) (accelDevice, error) {
		d, err := cuda.Open(i)
		if err != nil {
			return nil, err
		}
		if major, _ := d.ComputeCapability(); major < 8 {
			_ = d.Close()
			return nil, fmt.Errorf("%s has compute capability %d.x; roentgo's kernels need 8.0 or newer (A100, H100, RTX 30xx and later)", d.Name(), major)
		}
		return cudaDevice{d}, nil
	}
}

// cudaDevice adapts *cuda.Device to accelDevice; buffers are *cuda.Buffer.
type cudaDevice struct{ d *cuda.Device }

// cb returns the *cuda.Buffer in x (nil for a nil x).
func cb(x any) *cuda.Buffer {
	if x == nil {
		return nil
	}
	return x.(*cuda.Buffer)
}

// first returns the first n elements of x as a buffer.
func first(x any, n int) *cuda.Buffer { return cb(x).View(0, n) }

func (c cudaDevice) Name() string {
	major, minor := c.d.ComputeCapability()
	return fmt.Sprintf("%s, %d SMs, sm_%d%d, %.0f GiB", c.d.Name(), c.d.Multiprocessors(), major, minor,
		float64(c.d.TotalMemory())/(1<<30))
}

func (c cudaDevice) Alloc(dt cpu.DType, n int) (any, error) {
	b, err := c.d.Alloc(dt, n)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (c cudaDevice) Free(b any)                 { cb(b).Free() }
func (c cudaDevice) View(b any, off, n int) any { return cb(b).View(off, n) }

func (c cudaDevice) Stats() (inUse, cached, total int64) {
	s := c.d.MemStats()
	return s.InUse, s.Cached, c.d.TotalMemory()
}

func (c cudaDevice) UploadF32(dst any, src []float32) error   { return c.d.UploadF32(cb(dst), src) }
func (c cudaDevice) UploadU16(dst any, src []uint16) error    { return c.d.UploadU16(cb(dst), src) }
func (c cudaDevice) DownloadF32(dst []float32, src any) error { return c.d.DownloadF32(dst, cb(src)) }
func (c cudaDevice) DownloadU16(dst []uint16, src any) error  { return c.d.DownloadU16(dst, cb(src)) }
func (c cudaDevice) Synchronize() error                       { return c.d.Synchronize() }
func (c cudaDevice) Fill(b any, n int, v float32) error       { return c.d.Fill(cb(b), n, v) }
func (c cudaDevice) Copy(dst, src any, n int) error           { return c.d.Copy(cb(dst), first(src, n)) }
func (c cudaDevice) Convert(src, dst any, n int) error        { return c.d.Convert(first(src, n), cb(dst)) }

func (c cudaDevice) CopyStrided(shape []int, dst any, ds []int, src any, ss []int) error {
	return c.d.CopyStrided(shape, cb(dst), ds, cb(src), ss)
}

func (c cudaDevice) Unary(op cpu.UnaryOp, alpha, beta float32, shape []int, y any, ys []int, x any, xs []int) error {
	return c.d.Unary(op, alpha, beta, shape, cb(y), ys, cb(x), xs)
}

func (c cudaDevice) Binary(op cpu.BinaryOp, shape []int, y any, ys []int, a any, as []int, b any, bs []int) error {
	return c.d.Binary(op, shape, cb(y), ys, cb(a), as, cb(b), bs)
}

func (c cudaDevice) Gemm(p accelGemm) error {
	return c.d.GemmEx(cuda.GemmParams{
		M: p.m, N: p.n, K: p.k, Alpha: p.alpha, Beta: p.beta,
		A: cuda.Mat{Buf: cb(p.a), Stride: p.lda, Trans: p.transA},
		B: cuda.Mat{Buf: cb(p.b), Stride: p.ldb, Trans: p.transB},
		C: cb(p.c), Ldc: p.ldc,
		Batch: p.batch, StrideA: p.strideA, StrideB: p.strideB, StrideC: p.strideC,
		Bias: cb(p.bias),
	})
}

func (c cudaDevice) Conv2d(p cpu.ConvParams, x, w any, wStride int, bias, y any) error {
	return c.d.Conv2d(p, cb(x), cuda.Mat{Buf: cb(w), Stride: wStride}, cb(bias), cb(y))
}

func (c cudaDevice) Attention(p cpu.AttnParams, q, k, v, o any) error {
	return c.d.Attention(p, cb(q), cb(k), cb(v), cb(o))
}

func (c cudaDevice) GroupNorm(x, y any, n, ch, hw, groups int, eps float32, gamma, beta any, silu bool) error {
	return c.d.GroupNorm(cb(x), cb(y), n, ch, hw, groups, eps, cb(gamma), cb(beta), silu)
}

func (c cudaDevice) LayerNorm(x, y any, rows, cols int, eps float32, gamma, beta any) error {
	return c.d.LayerNorm(cb(x), cb(y), rows, cols, eps, cb(gamma), cb(beta))
}

func (c cudaDevice) Softmax(x, y any, rows, cols int) error {
	return c.d.Softmax(cb(x), cb(y), rows, cols)
}

func (c cudaDevice) Activate(f cpu.Activation, x, y any, n int) error {
	return c.d.Activate(f, first(x, n), cb(y))
}

func (c cudaDevice) GEGLU(x, y any, rows, d int) error { return c.d.GEGLU(cb(x), cb(y), rows, d) }

func (c cudaDevice) Upsample2x(x, y any, nc, h, w int) error {
	return c.d.Upsample2x(cb(x), cb(y), nc, h, w)
}

func (c cudaDevice) TimestepEmbedding(t any, n, dim int, flip bool, shift, scale, maxPeriod float32, out any) error {
	return c.d.TimestepEmbedding(first(t, n), dim, flip, shift, scale, maxPeriod, cb(out))
}
