// Package kernels is the vocabulary shared by roentgo's compute kernels: the
// storage types of operands (DType, with the scalar F16/BF16 conversions that
// define them), matrix operands (Mat), the parameters of the fused ops
// (ConvParams, AttnParams, Activation), the names of the strided elementwise and
// reduction ops (UnaryOp, BinaryOp, ReduceOp, with the scalar functions that
// define them), the shape arithmetic of strided operands (MergeDims, Span), and
// the interface of an accelerator (Device, generic over its buffer type, with
// DeviceMat and GemmParams).
//
// It holds no compute. The devices import it and implement the ops over their
// own memory: kernels/cpu over host slices (with the naive ...Ref loops that
// define each op), kernels/cuda over device buffers, and the conformance suite
// kernels/kerneltest checks any device against the references. Because the
// vocabulary lives here, no device package imports another.
package kernels
