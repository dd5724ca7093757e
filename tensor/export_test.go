package tensor

import (
	"sync/atomic"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// nullDevice is an accelerator whose kernels do nothing: running a model on it
// measures the host-side cost of the accelerator path (op dispatch, shape
// checks, views, allocation) that a GPU's kernels must hide.
type nullDevice struct{ calls, allocs atomic.Int64 }

type nullBuf struct{}

var theNullBuf = &nullBuf{}

func (d *nullDevice) k() error                                        { d.calls.Add(1); return nil }
func (d *nullDevice) Name() string                                    { return "null" }
func (d *nullDevice) Alloc(cpu.DType, int) (any, error)               { d.allocs.Add(1); return theNullBuf, nil }
func (d *nullDevice) Free(any)                                        {}
func (d *nullDevice) View(b any, _, _ int) any                        { return b }
func (d *nullDevice) Stats() (int64, int64, int64)                    { return 0, 0, 0 }
func (d *nullDevice) UploadF32(any, []float32) error                  { return nil }
func (d *nullDevice) UploadU16(any, []uint16) error                   { return nil }
func (d *nullDevice) DownloadF32([]float32, any) error                { return nil }
func (d *nullDevice) DownloadU16([]uint16, any) error                 { return nil }
func (d *nullDevice) Synchronize() error                              { return nil }
func (d *nullDevice) Fill(any, int, float32) error                    { return d.k() }
func (d *nullDevice) Copy(any, any, int) error                        { return d.k() }
func (d *nullDevice) CopyStrided([]int, any, []int, any, []int) error { return d.k() }
func (d *nullDevice) Convert(any, any, int) error                     { return d.k() }
func (d *nullDevice) Unary(cpu.UnaryOp, float32, float32, []int, any, []int, any, []int) error {
	return d.k()
}
func (d *nullDevice) Binary(cpu.BinaryOp, []int, any, []int, any, []int, any, []int) error {
	return d.k()
}
func (d *nullDevice) Gemm(accelGemm) error                                 { return d.k() }
func (d *nullDevice) Conv2d(cpu.ConvParams, any, any, int, any, any) error { return d.k() }
func (d *nullDevice) Attention(cpu.AttnParams, any, any, any, any) error   { return d.k() }
func (d *nullDevice) GroupNorm(any, any, int, int, int, int, float32, any, any, bool) error {
	return d.k()
}
func (d *nullDevice) LayerNorm(any, any, int, int, float32, any, any) error { return d.k() }
func (d *nullDevice) Softmax(any, any, int, int) error                      { return d.k() }
func (d *nullDevice) Activate(cpu.Activation, any, any, int) error          { return d.k() }
func (d *nullDevice) GEGLU(any, any, int, int) error                        { return d.k() }
func (d *nullDevice) Upsample2x(any, any, int, int, int) error              { return d.k() }
func (d *nullDevice) TimestepEmbedding(any, int, int, bool, float32, float32, float32, any) error {
	return d.k()
}

// OpenNullDevice opens a null accelerator (see nullDevice) as sim:1000+idx,
// computing in F16, and returns it with its kernel-call and allocation counters.
func OpenNullDevice(idx int) (dev Device, calls, allocs func() int64) {
	openMu.Lock()
	defer openMu.Unlock()
	dev = Device{Kind: KindSim, Index: 1000 + idx}
	nd := &nullDevice{}
	register(dev, newAccelBackend(dev, nd))
	return dev, nd.calls.Load, nd.allocs.Load
}
