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
// released tensor panics on use (see GetPoolStats, SetPoolLimit).
//
// Every handle counts, intermediate views included: in
// x.Select(0, i).Select(0, j) the first Select's view holds the buffer until it
// is released too.
//
// # Scopes
//
// Model code does not release handles one by one: it runs each block in a
// Scope, an arena that releases every handle made inside it (on the calling
// goroutine) when the block returns or panics, except the block's result, which
// moves to the enclosing scope:
//
//	func (b *Block) Forward(x *tensor.Tensor) *tensor.Tensor {
//		return tensor.Scope(func() *tensor.Tensor {
//			h := b.Conv1.Forward(tensor.SiLU(b.Norm1.Forward(x)))
//			return b.Conv2.Forward(tensor.SiLU(b.Norm2.Forward(h))).AddInPlace(x)
//		})
//	}
//
// Scopes nest; Scope2 and ScopeN return several results and Do none. A block
// hands a tensor to a structure of its caller with Escape (to the enclosing
// scope) and keeps one for good with Persist (a cache). Scope(f, consume...)
// also frees the listed tensors, when a scope around it owns them, at its end:
// the previous value of a chain h = f(h) (Chain writes that loop) or a skip
// connection once it is concatenated, so that peak memory is that of releasing
// by hand. Tensors made outside every scope (a caller's inputs, weights) are
// never freed by one; Release remains legal inside a scope and is still the
// tool for lifetimes that are not a block's (the latents of a sampling loop,
// a scheduler's history).
//
// Autograd is unaffected: the values an op saves for its backward rule are
// handles no scope owns, and Backward (and user callbacks wrapped in Unscoped)
// run outside every scope. A scope captures only the handles of its own
// goroutine: a tensor made on another goroutine, even while a scope is open, is
// not captured. With no scope open anywhere, a new handle costs one atomic load
// more; with one open, the goroutine's identity (the runtime's g pointer, read
// by one instruction on amd64 and arm64), a map lookup that is lock-free for
// the goroutine that last opened a scope, and an append.
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
