package tensor

import (
	"sync/atomic"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// nullDevice is an accelerator whose kernels do nothing: running a model on it
// measures the host-side cost of the accelerator path (op dispatch, shape
// checks, views, allocation) that a GPU's kernels must hide.
type nullDevice struct{ calls, allocs atomic.Int64 }

type nullBuf struct{}

var theNullBuf = &nullBuf{}

var _ kernels.Device[*nullBuf] = (*nullDevice)(nil)

func (d *nullDevice) k() error                                   { d.calls.Add(1); return nil }
func (d *nullDevice) Name() string                               { return "null" }
func (d *nullDevice) Alloc(cpu.DType, int) (*nullBuf, error)     { d.allocs.Add(1); return theNullBuf, nil }
func (d *nullDevice) Free(*nullBuf)                              {}
func (d *nullDevice) View(b *nullBuf, _, _ int) *nullBuf         { return b }
func (d *nullDevice) Stats() (int64, int64, int64)               { return 0, 0, 0 }
func (d *nullDevice) UploadF32(*nullBuf, []float32) error        { return nil }
func (d *nullDevice) UploadU16(*nullBuf, []uint16) error         { return nil }
func (d *nullDevice) DownloadF32([]float32, *nullBuf) error      { return nil }
func (d *nullDevice) DownloadU16([]uint16, *nullBuf) error       { return nil }
func (d *nullDevice) Synchronize() error                         { return nil }
func (d *nullDevice) Fill(*nullBuf, int, float32) error          { return d.k() }
func (d *nullDevice) Copy(*nullBuf, *nullBuf, int) error         { return d.k() }
func (d *nullDevice) Convert(*nullBuf, *nullBuf, int) error      { return d.k() }
func (d *nullDevice) Gemm(kernels.GemmParams[*nullBuf]) error    { return d.k() }
func (d *nullDevice) Softmax(*nullBuf, *nullBuf, int, int) error { return d.k() }
func (d *nullDevice) GEGLU(*nullBuf, *nullBuf, int, int) error   { return d.k() }
func (d *nullDevice) Upsample2x(*nullBuf, *nullBuf, int, int, int) error {
	return d.k()
}
func (d *nullDevice) CopyStrided([]int, *nullBuf, []int, *nullBuf, []int) error {
	return d.k()
}
func (d *nullDevice) Unary(cpu.UnaryOp, float32, float32, []int, *nullBuf, []int, *nullBuf, []int) error {
	return d.k()
}
func (d *nullDevice) Binary(cpu.BinaryOp, []int, *nullBuf, []int, *nullBuf, []int, *nullBuf, []int) error {
	return d.k()
}
func (d *nullDevice) Conv2d(cpu.ConvParams, *nullBuf, kernels.DeviceMat[*nullBuf], *nullBuf, *nullBuf) error {
	return d.k()
}
func (d *nullDevice) Attention(cpu.AttnParams, *nullBuf, *nullBuf, *nullBuf, *nullBuf) error {
	return d.k()
}
func (d *nullDevice) GroupNorm(*nullBuf, *nullBuf, int, int, int, int, float32, *nullBuf, *nullBuf, bool) error {
	return d.k()
}
func (d *nullDevice) LayerNorm(*nullBuf, *nullBuf, int, int, float32, *nullBuf, *nullBuf) error {
	return d.k()
}
func (d *nullDevice) Activate(cpu.Activation, *nullBuf, *nullBuf, int) error { return d.k() }
func (d *nullDevice) TimestepEmbedding(*nullBuf, int, int, bool, float32, float32, float32, *nullBuf) error {
	return d.k()
}

// OpenNullDevice opens a null accelerator (see nullDevice) as sim:1000+idx,
// computing in F16, and returns it with its kernel-call and allocation counters.
func OpenNullDevice(idx int) (dev Device, calls, allocs func() int64) {
	openMu.Lock()
	defer openMu.Unlock()
	dev = Device{Kind: KindSim, Index: 1000 + idx}
	nd := &nullDevice{}
	register(dev, newAccelBackend[*nullBuf](dev, nd))
	return dev, nd.calls.Load, nd.allocs.Load
}
