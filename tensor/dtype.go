package tensor

import "fmt"

// DType is the element type of a tensor's storage.
type DType uint8

const (
	// F32 is IEEE-754 binary32, the compute type on the CPU.
	F32 DType = iota
	// F16 is IEEE-754 binary16 (storage for weights; converted by the kernels).
	F16
	// BF16 is bfloat16 (storage for weights; converted by the kernels).
	BF16
	// I64 is a signed 64-bit integer (token ids, position ids, indices).
	I64
)

// Size returns the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case I64:
		return 8
	}
	panic(fmt.Sprintf("tensor: unknown dtype %d", uint8(d)))
}

// String returns the safetensors name of the dtype: "F32", "F16", "BF16", "I64".
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	case I64:
		return "I64"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// IsHalf reports whether d is a 16-bit floating-point type (F16 or BF16).
func (d DType) IsHalf() bool { return d == F16 || d == BF16 }

// ParseDType returns the dtype named s (as String writes it), or an error.
func ParseDType(s string) (DType, error) {
	switch s {
	case "F32":
		return F32, nil
	case "F16":
		return F16, nil
	case "BF16":
		return BF16, nil
	case "I64":
		return I64, nil
	}
	return 0, fmt.Errorf("tensor: unsupported dtype %q (want F32, F16, BF16 or I64)", s)
}

// DeviceKind is the kind of a compute device.
type DeviceKind uint8

const (
	// KindCPU is the host processor (kernels/cpu).
	KindCPU DeviceKind = iota
	// KindCUDA is an NVIDIA GPU (kernels/cuda; binaries built with -tags cuda).
	KindCUDA
	// KindSim is the simulated accelerator: host memory and kernels/cpu behind
	// the accelerator code path, for testing device code without a GPU.
	KindSim
)

// Device names where a tensor's storage lives and where ops on it run.
type Device struct {
	Kind  DeviceKind
	Index int // ordinal among devices of the kind (0 for the CPU)
}

// CPU is the host device.
var CPU = Device{Kind: KindCPU}

// String returns "cpu", "cuda:N" or "sim:N".
func (d Device) String() string {
	switch d.Kind {
	case KindCPU:
		return "cpu"
	case KindCUDA:
		return fmt.Sprintf("cuda:%d", d.Index)
	case KindSim:
		return fmt.Sprintf("sim:%d", d.Index)
	}
	return fmt.Sprintf("device(%d:%d)", d.Kind, d.Index)
}
