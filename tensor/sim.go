package tensor

import (
	"fmt"
	"math"
	"sync"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// simDevice is the simulated accelerator ("sim"), a kernels.Device[*simBuf]:
// buffers in host memory, kernels from kernels/cpu. It exercises everything
// the tensor package does on a real accelerator — device buffers and their
// views, transfers, the compute dtype with 16-bit storage and F32 arithmetic
// (each kernel reads 16-bit operands into float32 and rounds its result once,
// as the CUDA kernels do), host fallbacks and memory accounting — so that code
// written for a GPU is tested on any machine. Fresh buffers hold NaN, so
// reading memory that was never written shows up in results.
type simDevice struct {
	mu    sync.Mutex
	inUse int64
	limit int64 // bytes; 0: no limit
}

func newSimDevice() *simDevice { return &simDevice{} }

var (
	_ kernels.Device[*simBuf] = (*simDevice)(nil)
	_ accelerator             = (*accelBackend[*simBuf])(nil)
)

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

// simb returns b after checking that its memory was not freed.
func simb(b *simBuf) *simBuf {
	if b == nil {
		return nil
	}
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

func (s *simDevice) Alloc(dt cpu.DType, n int) (*simBuf, error) {
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

func (s *simDevice) Free(b *simBuf) {
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

func (s *simDevice) View(x *simBuf, off, n int) *simBuf {
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

func (s *simDevice) UploadF32(dst *simBuf, src []float32) error {
	copy(simb(dst).f32[:len(src)], src)
	return nil
}

func (s *simDevice) UploadU16(dst *simBuf, src []uint16) error {
	copy(simb(dst).u16[:len(src)], src)
	return nil
}

func (s *simDevice) DownloadF32(dst []float32, src *simBuf) error {
	copy(dst, simb(src).f32[:len(dst)])
	return nil
}

func (s *simDevice) DownloadU16(dst []uint16, src *simBuf) error {
	copy(dst, simb(src).u16[:len(dst)])
	return nil
}

func (s *simDevice) Synchronize() error { return nil }

// read returns the first n elements of x as float32 (x itself when F32; nil
// for a nil x).
func read(x *simBuf, n int) []float32 {
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
func write(x *simBuf, n int) (f []float32, commit func()) {
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

func (s *simDevice) Fill(x *simBuf, n int, v float32) error {
	f, commit := write(x, n)
	for i := range f {
		f[i] = v
	}
	commit()
	return nil
}

func (s *simDevice) Copy(dst, src *simBuf, n int) error {
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

func (s *simDevice) CopyStrided(shape []int, dst *simBuf, ds []int, src *simBuf, ss []int) error {
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

func (s *simDevice) Convert(src, dst *simBuf, n int) error {
	f := read(src, n)
	o, commit := write(dst, n)
	copy(o, f)
	commit()
	return nil
}

func (s *simDevice) Unary(op cpu.UnaryOp, alpha, beta float32, shape []int, y *simBuf, ys []int, x *simBuf, xs []int) error {
	xf := read(x, cpu.Span(shape, xs))
	yf, commit := write(y, cpu.Span(shape, ys))
	cpu.UnaryRef(op, alpha, beta, shape, yf, ys, xf, xs)
	commit()
	return nil
}

func (s *simDevice) Binary(op cpu.BinaryOp, shape []int, y *simBuf, ys []int, a *simBuf, as []int, b *simBuf, bs []int) error {
	af := read(a, cpu.Span(shape, as))
	bf := read(b, cpu.Span(shape, bs))
	yf, commit := write(y, cpu.Span(shape, ys))
	cpu.BinaryRef(op, shape, yf, ys, af, as, bf, bs)
	commit()
	return nil
}

// simMat returns the cpu.Mat of a matrix operand.
func simMat(m kernels.DeviceMat[*simBuf]) cpu.Mat {
	b := simb(m.Buf)
	if b.dt == cpu.F32 {
		return cpu.F32Mat(b.f32, m.Stride, m.Trans)
	}
	return cpu.HalfMat(b.u16, b.dt, m.Stride, m.Trans)
}

func (s *simDevice) Gemm(p kernels.GemmParams[*simBuf]) error {
	batch := p.Batches()
	if p.M == 0 || p.N == 0 {
		return nil
	}
	n := (batch-1)*p.StrideC + (p.M-1)*p.Ldc + p.N
	c, commit := write(p.C, n)
	beta := p.Beta
	nb := p.N
	if p.BiasRows {
		nb = p.M
	}
	if bias := read(p.Bias, nb); bias != nil {
		for z := range batch {
			for i := range p.M {
				row := c[z*p.StrideC+i*p.Ldc:]
				for j := range p.N {
					v := bias[j]
					if p.BiasRows {
						v = bias[i]
					}
					if beta != 0 {
						v += beta * row[j]
					}
					row[j] = v
				}
			}
		}
		beta = 1
	}
	cpu.GemmBatched(batch, p.M, p.N, p.K, p.Alpha, simMat(p.A), p.StrideA, simMat(p.B), p.StrideB, beta, c, p.Ldc, p.StrideC)
	if p.R != nil {
		r := read(p.R, (batch-1)*p.StrideR+(p.M-1)*p.Ldr+p.N)
		for z := range batch {
			for i := range p.M {
				row, rr := c[z*p.StrideC+i*p.Ldc:], r[z*p.StrideR+i*p.Ldr:]
				for j := range p.N {
					row[j] += rr[j]
				}
			}
		}
	}
	commit()
	return nil
}

func (s *simDevice) Conv2d(p cpu.ConvParams, x *simBuf, w kernels.DeviceMat[*simBuf], bias, y *simBuf) error {
	xf := read(x, p.N*p.C*p.H*p.W)
	ny := p.N * p.K * p.OutH() * p.OutW()
	yf, commit := write(y, ny)
	cpu.Conv2d(p, xf, simMat(w), read(bias, p.K), yf)
	commit()
	return nil
}

func (s *simDevice) Attention(p cpu.AttnParams, q, k, v, o *simBuf) error {
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

func (s *simDevice) GroupNorm(x, y *simBuf, n, c, hw, groups int, eps float32, gamma, beta *simBuf, silu bool) error {
	m := n * c * hw
	xf := read(x, m)
	yf, commit := write(y, m)
	cpu.GroupNorm(xf, yf, n, c, hw, groups, eps, read(gamma, c), read(beta, c), silu)
	commit()
	return nil
}

func (s *simDevice) LayerNorm(x, y *simBuf, rows, cols int, eps float32, gamma, beta *simBuf) error {
	xf := read(x, rows*cols)
	yf, commit := write(y, rows*cols)
	cpu.LayerNorm(xf, yf, rows, cols, eps, read(gamma, cols), read(beta, cols))
	commit()
	return nil
}

func (s *simDevice) Softmax(x, y *simBuf, rows, cols int) error {
	xf := read(x, rows*cols)
	yf, commit := write(y, rows*cols)
	cpu.Softmax(xf, yf, rows, cols)
	commit()
	return nil
}

func (s *simDevice) Activate(f cpu.Activation, x, y *simBuf, n int) error {
	xf := read(x, n)
	yf, commit := write(y, n)
	cpu.Activate(f, xf, yf)
	commit()
	return nil
}

func (s *simDevice) GEGLU(x, y *simBuf, rows, d int) error {
	xf := read(x, rows*2*d)
	yf, commit := write(y, rows*d)
	cpu.GEGLU(xf, yf, rows, d)
	commit()
	return nil
}

func (s *simDevice) Upsample2x(x, y *simBuf, nc, h, w int) error {
	xf := read(x, nc*h*w)
	yf, commit := write(y, 4*nc*h*w)
	cpu.Upsample2x(xf, yf, nc, h, w)
	commit()
	return nil
}

func (s *simDevice) TimestepEmbedding(t *simBuf, n, dim int, flip bool, shift, scale, maxPeriod float32, out *simBuf) error {
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
	if ab, ok := backendFor(d).(*accelBackend[*simBuf]); ok {
		if s, ok := ab.d.(*simDevice); ok {
			s.mu.Lock()
			s.limit = bytes
			s.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("tensor: %v is not a simulated device", d)
}
