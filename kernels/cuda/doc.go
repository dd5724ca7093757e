// Package cuda holds roentgo's CUDA kernels and their Go launchers.
//
// The kernels are CUDA C++ sources, one file per op family (gemm.cu, conv.cu,
// attention.cu, norm.cu, elementwise.cu, sharing common.cuh), with extern "C"
// entry points named after the op and dtype (gemm_f16_nt_of32_128,
// groupnorm_apply_bf16, attention_f16_d40, ...). The strided elementwise
// kernels (copy_strided_b16/b32, unary_strided, binary_strided, fill_b16/b32)
// work on arbitrary views: shape plus element strides per operand (stride 0
// broadcasts), merged to at most 6 dimensions by the launcher, with the dtypes
// of unary and binary operands chosen at run time. `go generate ./kernels/cuda`
// compiles each to PTX for compute_80 (so A100, H100 and H200 JIT-compile it)
// into ptx/*.ptx, whose first lines record the SHA-256 of the sources it was
// made from; the PTX is committed and embedded with go:embed, so building needs
// no nvcc. Semantics are those of the reference loops in kernels/cpu (ref.go).
//
// Without the cuda build tag the package holds only the embedded PTX and the
// checks that need no GPU: the PTX matches its sources; ptxas (when on PATH)
// accepts it for sm_90 with no register spills in the hot kernels; and the
// kernels, compiled with g++ against the small CPU emulator in emu/ (threads as
// fibers, the PTX fragment layouts of ldmatrix and mma.sync), agree with plain
// loops on small shapes that cross every tile edge.
//
// With -tags cuda it adds Device: one CUDA context bound to one locked OS
// thread, through which every driver call goes; lazily loaded, cached modules
// and functions; one stream; a caching allocator; and launchers with
// kernels/cpu-like signatures over device buffers. The vocabulary they share
// with kernels/cpu (DType, ConvParams, AttnParams, Activation, the op enums,
// MergeDims) comes from package kernels; kernels/cpu is imported only by tests. The driver API comes from
// gorgonia.org/cu (root package only), whose package initialiser calls
// cuInit and exits the process when no driver or GPU is present, so a binary
// built with -tags cuda needs a machine with an NVIDIA GPU and driver. Building
// it needs CUDA 11.x/12.x headers and a libcuda.so to link against (see
// scripts/install-cuda.sh for Debian's stub library).
package cuda

//go:generate go run ./internal/genptx
