package tensor

import (
	"fmt"
	"math"
	"sync"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// simDevice is the simulated accelerator ("sim"): buffers in host memory,
// kernels from kernels/cpu. It exercises everything the tensor package does on
// a real accelerator — device buffers and their views, transfers, the compute
// dtype with 16-bit storage and F32 arithmetic (each kernel reads 16-bit
// operands into float32 and rounds its result once, as the CUDA kernels do),
// host fallbacks and memory accounting — so that code written for a GPU is
// tested on any machine. Fresh buffers hold NaN, so reading memory that was
// never written shows up in results.
type simDevice struct {
	mu    sync.Mutex
	inUse int64
	limit int64 // bytes; 0: no limit
}

func newSimDevice() *simDevice { return &simDevice{} }

// simBuf is a simulated device buffer or a view of one.
type simBuf struct {
	dt    cpu.DType
	f32   []float32
	u16   []uint16
	root  *simBuf // the allocation a view belongs to (itself for an allocation)
	freed bool
}

func (b *simBuf) n() int {
	if b.dt == cpu.F32 {
		return len(b.f32)
	}
	return len(b.u16)
}

func simb(x any) *simBuf {
	if x == nil {
		return nil
	}
	b := x.(*simBuf)
	if b.root.freed {
		panic("tensor: sim: use of a freed buffer")
	}
	return b
}

func (s *simDevice) Name() string { return "simulated accelerator (host memory, kernels/cpu)" }

func elemBytes(dt cpu.DType) int64 {
	if dt == cpu.F32 {
		return 4
	}
	return 2
}

func (s *simDevice) Alloc(dt cpu.DType, n int) (any, error) {
	bytes := int64(n) * elemBytes(dt)
	s.mu.Lock()
	if s.limit > 0 && s.inUse+bytes > s.limit {
		defer s.mu.Unlock()
		return nil, fmt.Errorf("sim: out of device memory allocating %d bytes: %d bytes in use, limit %d", bytes, s.inUse, s.limit)
	}
	s.inUse += bytes
	s.mu.Unlock()
	b := &simBuf{dt: dt}
	b.root = b
	switch dt {
	case cpu.F32:
		b.f32 = make([]float32, n)
		for i := range b.f32 {
			b.f32[i] = float32(math.NaN())
		}
	default:
		b.u16 = make([]uint16, n)
		nan := uint16(0x7e00)
		if dt == cpu.BF16 {
			nan = 0x7fc0
		}
		for i := range b.u16 {
			b.u16[i] = nan
		}
	}
	return b, nil
}

func (s *simDevice) Free(x any) {
	b := x.(*simBuf)
	if b.root != b {
		panic("tensor: sim: Free of a buffer view")
	}
	if b.freed {
		panic("tensor: sim: buffer freed twice")
	}
	b.freed = true
	s.mu.Lock()
	s.inUse -= int64(b.n()) * elemBytes(b.dt)
	s.mu.Unlock()
}

func (s *simDevice) View(x any, off, n int) any {
	b := simb(x)
	if off < 0 || n < 0 || off+n > b.n() {
		panic(fmt.Sprintf("tensor: sim: view [%d, %d) of a buffer of %d elements", off, off+n, b.n()))
	}
	v := &simBuf{dt: b.dt, root: b.root}
	if b.dt == cpu.F32 {
		v.f32 = b.f32[off : off+n : off+n]
	} else {
		v.u16 = b.u16[off : off+n : off+n]
	}
	return v
}

func (s *simDevice) Stats() (inUse, cached, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse, 0, 0
}

func (s *simDevice) UploadF32(dst any, src []float32) error {
	copy(simb(dst).f32[:len(src)], src)
	return nil
}

func (s *simDevice) UploadU16(dst any, src []uint16) error {
	copy(simb(dst).u16[:len(src)], src)
	return nil
}

func (s *simDevice) DownloadF32(dst []float32, src any) error {
	copy(dst, simb(src).f32[:len(dst)])
	return nil
}

func (s *simDevice) DownloadU16(dst []uint16, src any) error {
	copy(dst, simb(src).u16[:len(dst)])
	return nil
}

func (s *simDevice) Synchronize() error { return nil }

// read returns the first n elements of x as float32 (x itself when F32; nil
// for a nil x).
func read(x any, n int) []float32 {
	b := simb(x)
	if b == nil {
		return nil
	}
	if b.dt == cpu.F32 {
		return b.f32[:n]
	}
	f := make([]float32, n)
	half2f32(b.dt, f, b.u16[:n])
	return f
}

// write returns a float32 slice for the first n elements of x and the function
// that stores it back: x itself when F32, else a copy of the current values
// that commit rounds into x (so elements a kernel skips keep their value).
func write(x any, n int) (f []float32, commit func()) {
	b := simb(x)
	if b.dt == cpu.F32 {
		return b.f32[:n], func() {}
	}
	f = make([]float32, n)
	half2f32(b.dt, f, b.u16[:n])
	return f, func() { f322half(b.dt, b.u16[:n], f) }
}

func half2f32(dt cpu.DType, dst []float32, src []uint16) {
	if dt == cpu.BF16 {
		cpu.BF16ToF32(dst, src)
	} else {
		cpu.F16ToF32(dst, src)
	}
}

func f322half(dt cpu.DType, dst []uint16, src []float32) {
	if dt == cpu.BF16 {
		cpu.F32ToBF16(dst, src)
	} else {
		cpu.F32ToF16(dst, src)
	}
}

func (s *simDevice) Fill(x any, n int, v float32) error {
	f, commit := write(x, n)
	for i := range f {
		f[i] = v
	}
	commit()
	return nil
}

func (s *simDevice) Copy(dst, src any, n int) error {
	d, c := simb(dst), simb(src)
	if d.dt != c.dt {
		panic("tensor: sim: Copy between dtypes")
	}
	if d.dt == cpu.F32 {
		copy(d.f32[:n], c.f32[:n])
	} else {
		copy(d.u16[:n], c.u16[:n])
	}
	return nil
}

func (s *simDevice) CopyStrided(shape []int, dst any, ds []int, src any, ss []int) error {
	d, c := simb(dst), simb(src)
	if d.dt != c.dt {
		panic("tensor: sim: CopyStrided between dtypes")
	}
	if d.dt == cpu.F32 {
		cpu.CopyStrided(shape, d.f32, ds, c.f32, ss)
	} else {
		cpu.CopyStrided(shape, d.u16, ds, c.u16, ss)
	}
	return nil
}

func (s *simDevice) Convert(src, dst any, n int) error {
	f := read(src, n)
	o, commit := write(dst, n)
	copy(o, f)
	commit()
	return nil
}

func (s *simDevice) Unary(op cpu.UnaryOp, alpha, beta float32, shape []int, y any, ys []int, x any, xs []int) error {
	xf := read(x, cpu.Span(shape, xs))
	yf, commit := write(y, cpu.Span(shape, ys))
	cpu.UnaryRef(op, alpha, beta, shape, yf, ys, xf, xs)
	commit()
	return nil
}

func (s *simDevice) Binary(op cpu.BinaryOp, shape []int, y any, ys []int, a any, as []int, b any, bs []int) error {
	af := read(a, cpu.Span(shape, as))
	bf := read(b, cpu.Span(shape, bs))
	yf, commit := write(y, cpu.Span(shape, ys))
	cpu.BinaryRef(op, shape, yf, ys, af, as, bf, bs)
	commit()
	return nil
}

// mat returns the cpu.Mat of a gemm operand with rows x cols logical elements.
func simMat(x any, stride int, trans bool) cpu.Mat {
	b := simb(x)
	if b.dt == cpu.F32 {
		return cpu.F32Mat(b.f32, stride, trans)
	}
	return cpu.HalfMat(b.u16, b.dt, stride, trans)
}

func (s *simDevice) Gemm(p accelGemm) error {
	if p.m == 0 || p.n == 0 || p.batch == 0 {
		return nil
	}
	n := (p.batch-1)*p.strideC + (p.m-1)*p.ldc + p.n
	c, commit := write(p.c, n)
	beta := p.beta
	if bias := read(p.bias, p.n); bias != nil {
		for z := range p.batch {
			for i := range p.m {
				row := c[z*p.strideC+i*p.ldc:]
				for j := range p.n {
					v := bias[j]
					if beta != 0 {
						v += beta * row[j]
					}
					row[j] = v
				}
			}
		}
		beta = 1
	}
	cpu.GemmBatched(p.batch, p.m, p.n, p.k, p.alpha, simMat(p.a, p.lda, p.transA), p.strideA,
		simMat(p.b, p.ldb, p.transB), p.strideB, beta, c, p.ldc, p.strideC)
	commit()
	return nil
}

func (s *simDevice) Conv2d(p cpu.ConvParams, x, w any, wStride int, bias, y any) error {
	xf := read(x, p.N*p.C*p.H*p.W)
	ny := p.N * p.K * p.OutH() * p.OutW()
	yf, commit := write(y, ny)
	cpu.Conv2d(p, xf, simMat(w, wStride, false), read(bias, p.K), yf)
	commit()
	return nil
}

func (s *simDevice) Attention(p cpu.AttnParams, q, k, v, o any) error {
	qs, ks, vs, os := p.Strides()
	hd := p.H * p.D
	rows := func(st, seq int) int {
		if seq == 0 || p.B == 0 {
			return 0
		}
		return (p.B*seq-1)*st + hd
	}
	of, commit := write(o, rows(os, p.Sq))
	cpu.Attention(p, read(q, rows(qs, p.Sq)), read(k, rows(ks, p.Sk)), read(v, rows(vs, p.Sk)), of)
	commit()
	return nil
}

func (s *simDevice) GroupNorm(x, y any, n, c, hw, groups int, eps float32, gamma, beta any, silu bool) error {
	m := n * c * hw
	xf := read(x, m)
	yf, commit := write(y, m)
	cpu.GroupNorm(xf, yf, n, c, hw, groups, eps, read(gamma, c), read(beta, c), silu)
	commit()
	return nil
}

func (s *simDevice) LayerNorm(x, y any, rows, cols int, eps float32, gamma, beta any) error {
	xf := read(x, rows*cols)
	yf, commit := write(y, rows*cols)
	cpu.LayerNorm(xf, yf, rows, cols, eps, read(gamma, cols), read(beta, cols))
	commit()
	return nil
}

func (s *simDevice) Softmax(x, y any, rows, cols int) error {
	xf := read(x, rows*cols)
	yf, commit := write(y, rows*cols)
	cpu.Softmax(xf, yf, rows, cols)
	commit()
	return nil
}

func (s *simDevice) Activate(f cpu.Activation, x, y any, n int) error {
	xf := read(x, n)
	yf, commit := write(y, n)
	cpu.Activate(f, xf, yf)
	commit()
	return nil
}

func (s *simDevice) GEGLU(x, y any, rows, d int) error {
	xf := read(x, rows*2*d)
	yf, commit := write(y, rows*d)
	cpu.GEGLU(xf, yf, rows, d)
	commit()
	return nil
}

func (s *simDevice) Upsample2x(x, y any, nc, h, w int) error {
	xf := read(x, nc*h*w)
	yf, commit := write(y, 4*nc*h*w)
	cpu.Upsample2x(xf, yf, nc, h, w)
	commit()
	return nil
}

func (s *simDevice) TimestepEmbedding(t any, n, dim int, flip bool, shift, scale, maxPeriod float32, out any) error {
	if simb(t).dt != cpu.F32 || simb(out).dt != cpu.F32 {
		panic("tensor: sim: TimestepEmbedding takes F32 buffers")
	}
	cpu.TimestepEmbedding(read(t, n), dim, flip, shift, scale, maxPeriod, simb(out).f32[:n*dim])
	return nil
}

// SetSimMemoryLimit limits the memory of the open simulated device d to bytes
// (0: no limit), so that tests can drive code into the out-of-memory errors a
// GPU gives.
func SetSimMemoryLimit(d Device, bytes int64) error {
	if ab, ok := backendFor(d).(*accelBackend); ok {
		if s, ok := ab.d.(*simDevice); ok {
			s.mu.Lock()
			s.limit = bytes
			s.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("tensor: %v is not a simulated device", d)
}
