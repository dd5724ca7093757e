package tensor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// openers opens the accelerator d of a kind (its backend); the CUDA one
// registers itself in a file built with the cuda tag.
var openers = map[DeviceKind]func(d Device) (accelerator, error){
	KindSim: func(d Device) (accelerator, error) { return newAccelBackend[*simBuf](d, newSimDevice()), nil },
}

var openMu sync.Mutex

// ParseDevice parses a device name: "cpu", "cuda" (= "cuda:0"), "cuda:N",
// "sim" or "sim:N". It does not open the device.
func ParseDevice(name string) (Device, error) {
	s := strings.ToLower(strings.TrimSpace(name))
	kind, idx, hasIdx := s, "0", false
	if i := strings.IndexByte(s, ':'); i >= 0 {
		kind, idx, hasIdx = s[:i], s[i+1:], true
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 {
		return Device{}, fmt.Errorf("tensor: device %q: bad ordinal %q (want e.g. cuda:0)", name, idx)
	}
	switch kind {
	case "cpu":
		if hasIdx && n != 0 {
			return Device{}, fmt.Errorf("tensor: device %q: there is one CPU device, \"cpu\"", name)
		}
		return CPU, nil
	case "cuda", "gpu":
		return Device{Kind: KindCUDA, Index: n}, nil
	case "sim":
		return Device{Kind: KindSim, Index: n}, nil
	}
	return Device{}, fmt.Errorf("tensor: unknown device %q (want cpu, cuda, cuda:N or sim)", name)
}

// Open parses name (see ParseDevice) and makes the device ready for tensors:
// on the first call for a GPU it creates the CUDA context and its allocator.
// Opening an open device returns it again. A build without -tags cuda has no
// CUDA devices and says so in the error.
func Open(name string) (Device, error) {
	d, err := ParseDevice(name)
	if err != nil {
		return Device{}, err
	}
	return d, OpenDevice(d)
}

// OpenDevice is Open for a parsed Device.
func OpenDevice(d Device) error {
	openMu.Lock()
	defer openMu.Unlock()
	if _, ok := (*backends.Load())[d]; ok {
		return nil
	}
	open := openers[d.Kind]
	if open == nil {
		if d.Kind == KindCUDA {
			return fmt.Errorf("tensor: device %v: this program was built without CUDA support (build it with -tags cuda)", d)
		}
		return fmt.Errorf("tensor: device %v: unknown device kind", d)
	}
	ab, err := open(d)
	if err != nil {
		return fmt.Errorf("tensor: opening %v: %w", d, err)
	}
	register(d, ab)
	return nil
}

// register adds the backend of d to backends. openMu held.
func register(d Device, b backend) {
	old := *backends.Load()
	m := make(map[Device]backend, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[d] = b
	backends.Store(&m)
}

// DeviceName describes an open device (for a GPU: its model and memory).
func DeviceName(d Device) string {
	if b, ok := backendFor(d).(accelerator); ok {
		return b.name()
	}
	return "host CPU"
}

// ComputeDType returns the dtype that ops on d compute in and return: F32 on
// the CPU; on an accelerator F16 unless SetComputeDType chose otherwise.
func ComputeDType(d Device) DType { return backendFor(d).computeType() }

// SetComputeDType chooses the compute dtype of the open accelerator d: F16,
// BF16 or F32 (F32 for checking against the CPU). Tensors made before keep
// their dtype; ops convert them as needed.
//
// On the CPU, ops always return F32 (ComputeDType stays F32) and dt chooses
// what the matrix products (linear layers, convolutions, batched matmuls)
// multiply in, process-wide: F32 (the default) or BF16 (both operands rounded
// to bfloat16, F32 accumulation; needs AVX512_BF16, see kernels/cpu
// SetCompute). Attention, normalisation and elementwise ops stay F32.
func SetComputeDType(d Device, dt DType) error {
	be := backendFor(d)
	ab, ok := be.(accelerator)
	if !ok {
		switch dt {
		case F32:
			_, err := cpu.SetCompute(cpu.F32)
			return err
		case BF16:
			if _, err := cpu.SetCompute(cpu.BF16); err != nil {
				return fmt.Errorf("tensor: BF16 compute on %v: %w", d, err)
			}
			return nil
		}
		return fmt.Errorf("tensor: %v computes in F32 or BF16 (AVX512_BF16), not %v", d, dt)
	}
	if dt != F32 && dt != F16 && dt != BF16 {
		return fmt.Errorf("tensor: compute dtype %v for %v (want F16, BF16 or F32)", dt, d)
	}
	ab.setComputeType(dt)
	return nil
}

// Synchronize waits until the work queued on d is done and returns the first
// error it met. Ops on an accelerator queue their kernels and return; copies
// to the host (ToDevice(CPU), Float32s, ...) wait by themselves.
func Synchronize(d Device) error { return backendFor(d).synchronize() }

// MemoryStats describes an accelerator's memory.
type MemoryStats struct {
	InUse  int64 // bytes held by live tensors
	Cached int64 // bytes kept by the allocator for reuse
	Total  int64 // the device's memory
}

// DeviceMemory returns the memory statistics of d (zero for the CPU).
func DeviceMemory(d Device) MemoryStats {
	if b, ok := backendFor(d).(accelerator); ok {
		u, c, t := b.stats()
		return MemoryStats{InUse: u, Cached: c, Total: t}
	}
	return MemoryStats{}
}

// DeviceFLOPs returns the floating-point operations of the matrix products
// (GEMM, convolution, attention; a multiply-add counts two) queued on the
// accelerator d so far, for reporting achieved FLOP/s (0 for the CPU).
func DeviceFLOPs(d Device) int64 {
	if b, ok := backendFor(d).(accelerator); ok {
		return b.flopCount()
	}
	return 0
}

// DeviceError is the panic value of an op that failed on its device at run
// time (out of memory, a failed launch, a lost device), as opposed to misuse,
// which panics with a string. Catch turns it into an error.
type DeviceError struct {
	Device Device
	Op     string
	Err    error
}

// Error returns "tensor: <device> <op>: <cause>".
func (e *DeviceError) Error() string { return fmt.Sprintf("tensor: %v %s: %v", e.Device, e.Op, e.Err) }

// Unwrap returns the cause.
func (e *DeviceError) Unwrap() error { return e.Err }

// Catch runs fn and returns the DeviceError it panicked with, if any; other
// panics go on. Programs wrap a model call in it to report device failures
// (out of memory) as errors.
func Catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if de, ok := r.(*DeviceError); ok {
				err = de
				return
			}
			if e, ok := r.(error); ok {
				var de *DeviceError
				if errors.As(e, &de) {
					err = e
					return
				}
			}
			panic(r)
		}
	}()
	fn()
	return nil
}
