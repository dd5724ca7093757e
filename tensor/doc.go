// Package tensor is roentgo's n-dimensional array: a Tensor is a view (shape,
// strides, offset) of a flat storage buffer on a Device, with eager ops that check
// shapes and dispatch to the device's kernels (package kernels/cpu on the CPU).
//
// # Layout and dtypes
//
// Tensors are row-major with PyTorch's dimension order ([N, C, H, W] images,
// [B, S, D] sequences). Computation on the CPU is in F32 (on accelerators see
// Devices). F16 and BF16 are storage types for weights: Linear, Conv2d and MatMul pass 16-bit weights to the
// kernels as they are, converted while packing, so a half-precision model never
// gets a float32 copy of its weights. Other ops convert non-F32 inputs (F16, BF16,
// I64) to F32 first. I64 holds token ids, position ids and indices.
//
// # Views and copies
//
// Reshape/View, Slice/Narrow, Select, Permute/Transpose, Squeeze/Unsqueeze,
// Expand, Chunk and Split return views that share storage with their input;
// Contiguous copies only when the layout is not dense. Ops return new contiguous
// tensors; the ...InPlace methods (AddInPlace for residuals, ...) write into
// their receiver. Every op accepts non-contiguous inputs.
//
// Conventions: methods for array algebra (views, elementwise arithmetic with
// NumPy broadcasting, reductions, MatMul, conversion); package functions for
// constructors, Cat/Stack and the neural-network ops with parameters (Linear,
// Conv2d, GroupNorm, LayerNorm, Softmax, Attention, activations, GEGLU,
// Upsample2xNearest, TimestepEmbedding, Embedding). Dimensions may be negative,
// counting from the end.
//
// # Errors
//
// Misuse by the program (mismatched shapes, out-of-range dims) panics with
// "tensor: <op>: ..." naming the shapes. User data (files) yields errors.
//
// # Buffer reuse
//
// Output buffers come from a size-class pool. (*Tensor).Release declares a tensor
// dead; when every tensor sharing its storage (the original and all its views) has
// been released, the buffer returns to the pool and the next op of a similar size
// reuses it. Release is optional and safe: a view that is still live keeps the
// buffer, tensors that are never released are garbage collected as usual, and a
// released tensor panics on use. Model code releases its intermediates so that a
// sampling loop runs without allocating (see GetPoolStats, SetPoolLimit).
//
// Every handle counts, intermediate views included: in
// x.Select(0, i).Select(0, j) the first Select's view holds the buffer until it
// is released too, so code that wants the buffer back releases each handle it
// made (or avoids naming intermediate views it never releases).
//
// # Devices
//
// Each op finds its device's backend (an unexported interface, one method per
// kernel) in one place; the CPU backend calls kernels/cpu. Open makes an
// accelerator available: "cuda:N" (an NVIDIA GPU through kernels/cuda, in
// binaries built with -tags cuda) or "sim:N" (a simulated accelerator on host
// memory and kernels/cpu, for testing device code anywhere). ToDevice copies a
// tensor to a device and back; ops need all operands on one device. On an
// accelerator, ops compute in and return the device's compute dtype (F16 by
// default; SetComputeDType chooses BF16 or F32), I64 tensors live in host
// memory, and kernels are queued: copies to the host wait for them, and
// Synchronize waits explicitly. A device failure at run time (out of memory)
// panics with a *DeviceError, which Catch turns into an error.
package tensor
