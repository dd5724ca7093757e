//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/roentgo/roentgo/kernels"
	"gorgonia.org/cu"
)

// Device is one CUDA device with one context, one stream, a module and function
// cache and a caching allocator. Every driver call runs on a single goroutine
// locked to its OS thread, to which the context is bound; the methods of Device
// hand closures to it and wait for them, so a Device may be used from any
// goroutine. Kernel launches and copies are queued on the stream and run in
// order; Synchronize waits for them.
//
// Launchers, Copy, Zero and Free are queued to the device goroutine without
// waiting (so launching does not pay a goroutine hand-off per kernel); their
// errors (a kernel missing from its module, a rejected launch) are kept and
// returned by the next Synchronize, Download or Close. Alloc and the uploads
// wait: an upload returns once the driver has staged the host data.
//
// Device implements kernels.Device[*Buffer] (the methods documented there)
// and offers more: Conv2dEx (residual, SIMT kernel), AttentionSIMT, Add,
// AddBroadcast, Concat, Zero, MemStats, Trim, Preload.
//
// Note: importing this package with -tags cuda links gorgonia.org/cu, whose
// package initialiser exits the process when the driver is missing or has no
// GPU; such binaries only run on a GPU machine.
type Device struct {
	calls chan call
	done  chan struct{}

	// Owned by the device goroutine.
	dev     cu.Device
	ctx     cu.CUContext
	stream  cu.Stream
	modules map[string]cu.Module
	funcs   map[string]cu.Function
	params  map[string][]int // kernel -> parameter sizes, from the PTX
	alloc   allocator
	pending error // first error of queued work not yet reported
	closed  bool

	// Set once at Open, read-only afterwards.
	name     string
	ordinal  int
	sms      int
	ccMajor  int
	ccMinor  int
	totalMem int64
}

// Device implements kernels.Device over *Buffer: the tensor package's
// accelerator backend and kerneltest.DeviceOps drive it directly.
var _ kernels.Device[*Buffer] = (*Device)(nil)

type call struct {
	fn   func() error
	errc chan error
}

// Open starts the device goroutine for the CUDA device with the given ordinal,
// retains its primary context, binds it to that goroutine's OS thread and
// creates a non-blocking stream.
func Open(ordinal int) (*Device, error) {
	d := &Device{
		calls:   make(chan call, 1024),
		done:    make(chan struct{}),
		modules: map[string]cu.Module{},
		funcs:   map[string]cu.Function{},
		params:  map[string][]int{},
		ordinal: ordinal,
	}
	d.alloc.init()
	ready := make(chan error, 1)
	go d.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Device) loop(ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	defer close(d.done)
	if err := d.init(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for c := range d.calls {
		err := c.fn()
		if c.errc != nil {
			c.errc <- err
		} else if err != nil && d.pending == nil {
			d.pending = err
		}
	}
}

func (d *Device) init() error {
	n, err := cu.NumDevices()
	if err != nil {
		return fmt.Errorf("cuda: counting devices: %w", err)
	}
	if n == 0 {
		return errors.New("cuda: no CUDA device found (is the NVIDIA driver loaded?)")
	}
	if d.ordinal < 0 || d.ordinal >= n {
		return fmt.Errorf("cuda: device ordinal %d out of range: %d device(s) present", d.ordinal, n)
	}
	if d.dev, err = cu.GetDevice(d.ordinal); err != nil {
		return fmt.Errorf("cuda: device %d: %w", d.ordinal, err)
	}
	if d.name, err = d.dev.Name(); err != nil {
		return fmt.Errorf("cuda: device %d name: %w", d.ordinal, err)
	}
	if d.sms, err = d.dev.Attribute(cu.MultiprocessorCount); err != nil {
		return fmt.Errorf("cuda: %s: multiprocessor count: %w", d.name, err)
	}
	if d.ccMajor, err = d.dev.Attribute(cu.ComputeCapabilityMajor); err != nil {
		return fmt.Errorf("cuda: %s: compute capability: %w", d.name, err)
	}
	if d.ccMinor, err = d.dev.Attribute(cu.ComputeCapabilityMinor); err != nil {
		return fmt.Errorf("cuda: %s: compute capability: %w", d.name, err)
	}
	if d.ccMajor < 8 {
		return fmt.Errorf("cuda: %s has compute capability %d.%d; the kernels need 8.0 or newer (A100, H100, H200)",
			d.name, d.ccMajor, d.ccMinor)
	}
	if d.totalMem, err = d.dev.TotalMem(); err != nil {
		return fmt.Errorf("cuda: %s: total memory: %w", d.name, err)
	}
	if d.ctx, err = d.dev.RetainPrimaryCtx(); err != nil {
		return fmt.Errorf("cuda: %s: retaining the primary context: %w", d.name, err)
	}
	if err = cu.SetCurrentContext(d.ctx); err != nil {
		return fmt.Errorf("cuda: %s: binding the context: %w", d.name, err)
	}
	if d.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return fmt.Errorf("cuda: %s: creating a stream: %w", d.name, err)
	}
	return nil
}

// do runs fn on the device thread and returns its error.
func (d *Device) do(fn func() error) error {
	errc := make(chan error, 1)
	select {
	case <-d.done:
		return errors.New("cuda: device is closed")
	case d.calls <- call{fn: fn, errc: errc}:
	}
	return <-errc
}

// queue hands fn to the device thread without waiting; its error is kept for
// the next Synchronize, Download or Close.
func (d *Device) queue(fn func() error) error {
	select {
	case <-d.done:
		return errors.New("cuda: device is closed")
	case d.calls <- call{fn: fn}:
	}
	return nil
}

// takePending returns and clears the first error of queued work. Device thread only.
func (d *Device) takePending() error {
	err := d.pending
	d.pending = nil
	return err
}

// Close waits for queued work, frees every device allocation (live buffers
// become invalid), releases the context and stops the device goroutine.
func (d *Device) Close() error {
	err := d.do(func() error {
		if d.closed {
			return nil
		}
		d.closed = true
		errs := []error{d.takePending()}
		if err := d.stream.Synchronize(); err != nil {
			errs = append(errs, fmt.Errorf("cuda: synchronize: %w", err))
		}
		errs = append(errs, d.alloc.releaseAll())
		for name, m := range d.modules {
			if err := m.Unload(); err != nil {
				errs = append(errs, fmt.Errorf("cuda: unloading module %s: %w", name, err))
			}
		}
		if err := d.stream.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("cuda: destroying stream: %w", err))
		}
		if err := d.dev.ReleasePrimaryCtx(); err != nil {
			errs = append(errs, fmt.Errorf("cuda: releasing context: %w", err))
		}
		return errors.Join(errs...)
	})
	select {
	case <-d.done:
	default:
		close(d.calls)
		<-d.done
	}
	return err
}

// Name describes the device: the model name the driver reports, the number of
// multiprocessors, the architecture and the memory ("NVIDIA H100 80GB HBM3,
// 132 SMs, sm_90, 79 GiB").
func (d *Device) Name() string {
	return fmt.Sprintf("%s, %d SMs, sm_%d%d, %.0f GiB", d.name, d.sms, d.ccMajor, d.ccMinor, float64(d.totalMem)/(1<<30))
}

// Model returns the device name reported by the driver (e.g. "NVIDIA H100 80GB HBM3").
func (d *Device) Model() string { return d.name }

// Multiprocessors returns the number of streaming multiprocessors.
func (d *Device) Multiprocessors() int { return d.sms }

// ComputeCapability returns the major and minor compute capability.
func (d *Device) ComputeCapability() (major, minor int) { return d.ccMajor, d.ccMinor }

// TotalMemory returns the device memory in bytes.
func (d *Device) TotalMemory() int64 { return d.totalMem }

// DriverVersion returns the CUDA driver version as the driver encodes it (13000 = 13.0).
func DriverVersion() int { return cu.Version() }

// Synchronize waits until all work queued on the device has finished and
// returns the first error of queued launches, or else the first asynchronous
// error of the stream (a failed kernel, an illegal address...).
func (d *Device) Synchronize() error {
	return d.do(func() error {
		if err := d.stream.Synchronize(); err != nil {
			return errors.Join(d.takePending(), fmt.Errorf("cuda: %s: synchronize: %w", d.name, err))
		}
		return d.takePending()
	})
}

// function returns the cached kernel name of module mod, loading the module
// (JIT-compiling its PTX for this GPU) on first use. Device thread only.
func (d *Device) function(mod, name string) (cu.Function, error) {
	if f, ok := d.funcs[name]; ok {
		return f, nil
	}
	m, err := d.module(mod)
	if err != nil {
		return cu.Function{}, err
	}
	f, err := m.Function(name)
	if err != nil {
		return cu.Function{}, fmt.Errorf("cuda: kernel %s not found in module %s: %w", name, mod, err)
	}
	d.funcs[name] = f
	return f, nil
}

// module returns module mod, loading it on first use. Device thread only.
func (d *Device) module(mod string) (cu.Module, error) {
	if m, ok := d.modules[mod]; ok {
		return m, nil
	}
	ptx, err := PTX(mod)
	if err != nil {
		return cu.Module{}, fmt.Errorf("cuda: no embedded PTX module %q: %w", mod, err)
	}
	m, err := cu.LoadData(string(ptx))
	if err != nil {
		return cu.Module{}, fmt.Errorf("cuda: %s: loading PTX module %s (JIT for sm_%d%d): %w",
			d.name, mod, d.ccMajor, d.ccMinor, err)
	}
	d.modules[mod] = m
	for k, v := range EntryParams(ptx) {
		d.params[k] = v
	}
	return m, nil
}

// Preload loads the named modules (all when none are given) so that the PTX
// JIT cost is not paid inside a timed region.
func (d *Device) Preload(modules ...string) error {
	if len(modules) == 0 {
		modules = ModuleNames()
	}
	return d.do(func() error {
		for _, mod := range modules {
			if _, err := d.module(mod); err != nil {
				return err
			}
		}
		return nil
	})
}

// args packs kernel arguments. cu's Launch reads 8 bytes through every
// parameter pointer, so each argument gets its own 8-byte slot; the driver
// takes the low bytes of the slot for 4-byte parameters (little-endian).
type args struct {
	slots [40]uint64
	sizes []int // bytes of each parameter, checked against the PTX
	ptrs  []unsafe.Pointer
}

func (a *args) put(v uint64, size int) *args {
	i := len(a.ptrs)
	if i == len(a.slots) {
		panic("cuda: too many kernel arguments")
	}
	a.slots[i] = v
	a.sizes = append(a.sizes, size)
	a.ptrs = append(a.ptrs, unsafe.Pointer(&a.slots[i]))
	return a
}

func (a *args) ptr(b *Buffer) *args {
	if b == nil {
		return a.put(0, 8)
	}
	return a.put(uint64(b.ptr), 8)
}
func (a *args) i32(v int) *args {
	if v < -1<<31 || v >= 1<<31 {
		panic(fmt.Sprintf("cuda: kernel argument %d does not fit in int32", v))
	}
	return a.put(uint64(uint32(int32(v))), 4)
}
func (a *args) i64(v int) *args             { return a.put(uint64(int64(v)), 8) }
func (a *args) f32(v float32) *args         { return a.put(uint64(*(*uint32)(unsafe.Pointer(&v))), 4) }
func (a *args) flag(v bool) *args           { return a.i32(btoi(v)) }
func (a *args) dtype(t kernels.DType) *args { return a.i32(int(t)) }

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

// launch queues kernel mod.name on the stream. Device thread only.
func (d *Device) launch(mod, name string, grid [3]int, block int, a *args) error {
	f, err := d.function(mod, name)
	if err != nil {
		return err
	}
	if want := d.params[name]; fmt.Sprint(want) != fmt.Sprint(a.sizes) {
		return fmt.Errorf("cuda: %s takes parameters of %v bytes, the launcher passed %v", name, want, a.sizes)
	}
	for i := range grid {
		if grid[i] < 1 {
			grid[i] = 1
		}
	}
	if grid[1] > 65535 || grid[2] > 65535 {
		return fmt.Errorf("cuda: %s: grid %v exceeds 65535 in y or z", name, grid)
	}
	if err := f.Launch(grid[0], grid[1], grid[2], block, 1, 1, 0, d.stream, a.ptrs); err != nil {
		return fmt.Errorf("cuda: launching %s grid %v block %d: %w", name, grid, block, err)
	}
	return nil
}
