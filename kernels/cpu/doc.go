// Package cpu holds the CPU compute kernels of roentgo: pure functions over raw
// buffers ([]float32, and []uint16 holding IEEE half or bfloat16 bits), sizes and
// strides, in the manner of BLAS. It knows nothing of tensors.
//
// Every operation has a naive reference implementation whose name ends in Ref and
// whose doc comment is the loop it computes. The exported operation without the
// suffix is the fast path: cache-blocked Go with Go-assembly micro-kernels for
// amd64 (AVX2/FMA, and AVX-512 where the processor has it, chosen at run time via
// golang.org/x/sys/cpu), a pure-Go fallback elsewhere, and parallelism over the
// goroutines allowed by SetThreads. Tests compare each fast path against its
// reference through the conformance suite in package kernels/kerneltest.
//
// The vocabulary of the kernels (DType, Mat, ConvParams, AttnParams, Activation,
// UnaryOp/BinaryOp/ReduceOp, MergeDims, Span, the scalar F16/BF16 conversions)
// is defined in package kernels and shared with the other devices; this package
// re-exports it under the same names as aliases.
//
// Layouts follow PyTorch: row-major, NCHW for images, [batch, seq, heads*headDim]
// for attention operands.
package cpu
