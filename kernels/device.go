package kernels

// Device is an accelerator: buffers in its own memory (of type B, a handle such
// as *cuda.Buffer) and the kernels the tensor package runs on them. The tensor
// package's accelerator backend is written once against it; kernels/cuda's
// *Device implements it, as does tensor's simulated device, and
// kernels/kerneltest.DeviceOps runs the conformance suite on any of them.
//
// A buffer holds elements of one DType (F32 as float32, F16/BF16 as 16-bit
// words). The zero B stands for an absent optional operand (a nil bias, gamma
// or beta). Counts and offsets are in elements; every operand starts at its
// buffer's first element (take a View to start elsewhere).
//
// Every method may queue its work: results are visible to later methods and to
// the downloads, which wait. Errors are run-time failures (out of memory, a
// failed launch, a lost device); a queued kernel's error may come back from a
// later Synchronize or download instead. Misuse (sizes that do not fit the
// buffers, mixed dtypes where one is required) panics, or comes back as an
// error where a device checks for it (the CUDA training kernels do).
//
// The kernels compute what their kernels/cpu namesakes compute (each
// documented on its ...Ref function), reading 16-bit operands as float32,
// computing in float32 and rounding each result once to the output's dtype.
// Vectors of parameters (bias, gamma, beta) and timesteps are F32, as are the
// statistics the training kernels save and their parameter gradients.
type Device[B comparable] interface {
	// Name describes the device for people: its model and, where it has them,
	// its size ("NVIDIA H100 80GB HBM3, 132 SMs, sm_90, 79 GiB").
	Name() string
	// Alloc returns a buffer of n elements of dt. Its contents are undefined.
	Alloc(dt DType, n int) (B, error)
	// Free gives back b, which Alloc returned (not a view). Work queued
	// before that uses b is unaffected.
	Free(b B)
	// View returns the n elements of b from off as a buffer sharing b's
	// memory; it is not freed and must not outlive b.
	View(b B, off, n int) B
	// Stats returns the bytes in live buffers, the bytes the device's
	// allocator keeps cached for reuse and the device's total memory (0 where
	// unknown).
	Stats() (inUse, cached, total int64)

	// UploadF32 copies src into the first len(src) elements of the F32
	// buffer dst; src may be reused when it returns.
	UploadF32(dst B, src []float32) error
	// UploadU16 copies the 16-bit words src into the first len(src) elements
	// of the F16 or BF16 buffer dst.
	UploadU16(dst B, src []uint16) error
	// DownloadF32 fills dst from the first len(dst) elements of the F32
	// buffer src, after the work queued before it; it returns that work's
	// first error.
	DownloadF32(dst []float32, src B) error
	// DownloadU16 is DownloadF32 for F16 and BF16 buffers.
	DownloadU16(dst []uint16, src B) error
	// Synchronize waits for the queued work and returns its first error.
	Synchronize() error

	// Fill sets the first n elements of b to v rounded to b's dtype (round
	// to nearest even, as F32ToF16Scalar and F32ToBF16Scalar).
	Fill(b B, n int, v float32) error
	// Copy copies the first n elements of src into dst, of one dtype; they
	// must not overlap.
	Copy(dst, src B, n int) error
	// CopyStrided is cpu.CopyStrided over buffers of one dtype:
	//
	//	for every index i of shape: dst[i·ds] = src[i·ss]
	//
	// Strides count elements from each buffer's first element; src strides may
	// be 0 (broadcast), dst strides not along dimensions of size > 1. The
	// device merges dimensions itself (see MergeDims). dst must not overlap src.
	CopyStrided(shape []int, dst B, ds []int, src B, ss []int) error
	// Convert converts the first n elements of src into the first n of dst,
	// in dst's dtype (round to nearest even; equal dtypes copy). Note the
	// argument order: source first.
	Convert(src, dst B, n int) error
	// Unary is cpu.UnaryRef with y and x each F32, F16 or BF16:
	//
	//	for every index i of shape: y[i·ys] = op(alpha, beta, x[i·xs])
	//
	// y may be x itself with the same strides (in place); otherwise they must
	// not overlap.
	Unary(op UnaryOp, alpha, beta float32, shape []int, y B, ys []int, x B, xs []int) error
	// Binary is cpu.BinaryRef with y, a and b each F32, F16 or BF16 (stride 0
	// broadcasts an input):
	//
	//	for every index i of shape: y[i·ys] = op(a[i·as], b[i·bs])
	//
	// y may be a or b itself with the same strides.
	Binary(op BinaryOp, shape []int, y B, ys []int, a B, as []int, b B, bs []int) error

	// Gemm computes the batched product p describes (see GemmParams;
	// cpu.GemmBatched for the product itself).
	Gemm(p GemmParams[B]) error
	// Conv2d is cpu.Conv2d: x [N, C, H, W] and y [N, K, OutH, OutW] of one
	// dtype, w [K, C*R*S] row-major with row stride w.Stride (not
	// transposed) of any float dtype, bias F32 [K] or absent.
	Conv2d(p ConvParams, x B, w DeviceMat[B], bias, y B) error
	// Attention is cpu.Attention (scaled-dot-product attention over [B, seq,
	// H*D] rows with the row strides of p) with q, k, v and o of one dtype; o
	// must not overlap q, k or v, and elements of o between rows are left
	// as they are.
	Attention(p AttnParams, q, k, v, o B) error
	// GroupNorm is cpu.GroupNorm: x, y [n, c, hw] of one dtype normalised
	// over groups of c/groups channels, times gamma plus beta (F32 [c] or
	// absent), then SiLU if silu. y may be x.
	GroupNorm(x, y B, n, c, hw, groups int, eps float32, gamma, beta B, silu bool) error
	// LayerNorm is cpu.LayerNorm: each row of x [rows, cols] normalised, times
	// gamma plus beta (F32 [cols] or absent), into y of x's dtype. y may be x.
	LayerNorm(x, y B, rows, cols int, eps float32, gamma, beta B) error
	// Softmax is cpu.Softmax over each row of x [rows, cols] into y of x's
	// dtype. y may be x.
	Softmax(x, y B, rows, cols int) error
	// Activate is cpu.Activate over the first n elements: y[i] = f(x[i]),
	// x and y of one dtype. y may be x.
	Activate(f Activation, x, y B, n int) error
	// GEGLU is cpu.GEGLU: y [rows, d] = x[:, :d] * gelu(x[:, d:]) for
	// x [rows, 2d], of one dtype.
	GEGLU(x, y B, rows, d int) error
	// Upsample2x is cpu.Upsample2x, nearest-neighbour: x [nc, h, w] into
	// y [nc, 2h, 2w], of one dtype.
	Upsample2x(x, y B, nc, h, w int) error
	// TimestepEmbedding is cpu.TimestepEmbedding: the sinusoidal embedding of
	// the n timesteps t (F32) into out [n, dim] (F32).
	TimestepEmbedding(t B, n, dim int, flip bool, shift, scale, maxPeriod float32, out B) error

	// The training (backward) kernels and the forwards that save what they
	// read. Tensor operands (x, y, dy, dx, q, ..., dq) are F32, F16 or BF16,
	// in practice the compute dtype; saved statistics (mean, rstd, lse) and
	// parameter gradients (dw, db, dgamma, dbeta) are F32. Gradients overwrite
	// their outputs (the caller accumulates). Each follows the kernels/cpu
	// ...Ref function named (which documents its loop); the results may differ
	// from it by float32 accumulation and the one rounding of each output.

	// Conv2dBackwardData is cpu.Conv2dBackwardDataRef: dx [N, C, H, W] from
	// dy [N, K, OutH, OutW] and w [K, C*R*S] (row stride w.Stride, not
	// transposed, any float dtype). dx must not overlap dy or w.
	Conv2dBackwardData(p ConvParams, dy B, w DeviceMat[B], dx B) error
	// Conv2dBackwardWeight is cpu.Conv2dBackwardWeightRef: dw [K, C*R*S]
	// (F32, dense rows) from x [N, C, H, W] and dy [N, K, OutH, OutW].
	Conv2dBackwardWeight(p ConvParams, x, dy, dw B) error
	// Conv2dBackwardBias is cpu.Conv2dBackwardBiasRef: db [K] (F32), the sums
	// of dy [N, K, OutH, OutW] over N, OutH and OutW.
	Conv2dBackwardBias(p ConvParams, dy, db B) error
	// AttentionWithLSE is cpu.AttentionWithLSERef: Attention (q, k, v of one
	// dtype, o may have another) that also writes lse [B*H*Sq] (F32), the
	// log-sum-exp of each query's scaled scores (-Inf for a query the causal
	// mask leaves without keys, whose output is zeros). Head dims up to 256.
	AttentionWithLSE(p AttnParams, q, k, v, o, lse B) error
	// AttentionBackward is cpu.AttentionBackwardRef: dq, dk, dv (laid out
	// like q, k, v; only the H*D columns of each row are written) from do
	// (laid out like o), q, k, v and the forward's o and lse
	// (AttentionWithLSE). q, k, v, o and do share a dtype, dq, dk and dv one
	// (possibly another). Head dims up to 256. The gradients must not overlap
	// the inputs or each other's elements.
	AttentionBackward(p AttnParams, do, q, k, v, o, lse, dq, dk, dv B) error
	// GroupNormSave is cpu.GroupNormSaveRef: GroupNorm (y may be x) that also
	// writes each (batch, group)'s mean and rstd (F32 [n*groups]).
	GroupNormSave(x, y B, n, c, hw, groups int, eps float32, gamma, beta B, silu bool, mean, rstd B) error
	// GroupNormBackward is cpu.GroupNormBackwardRef: dx [n, c, hw] and dgamma,
	// dbeta (F32 [c]) from x, dy and the saved mean, rstd; gamma and beta are
	// F32 or absent. Each of dx, dgamma, dbeta may be absent (not computed).
	// dx may be dy, not x.
	GroupNormBackward(x, dy, dx B, n, c, hw, groups int, mean, rstd, gamma, beta B, silu bool, dgamma, dbeta B) error
	// LayerNormSave is cpu.LayerNormSaveRef: LayerNorm (y may be x) that also
	// writes each row's mean and rstd (F32 [rows]).
	LayerNormSave(x, y B, rows, cols int, eps float32, gamma, beta, mean, rstd B) error
	// LayerNormBackward is cpu.LayerNormBackwardRef: dx [rows, cols] and
	// dgamma, dbeta (F32 [cols]) from x, dy and the saved mean, rstd; gamma is
	// F32 or absent. Each of dx, dgamma, dbeta may be absent. dx may be dy,
	// not x.
	LayerNormBackward(x, dy, dx B, rows, cols int, mean, rstd, gamma, dgamma, dbeta B) error
	// SoftmaxBackward is cpu.SoftmaxBackwardRef: dx [rows, cols] =
	// y*(dy - rowsum(dy*y)) from the softmax output y. dx may be y or dy.
	SoftmaxBackward(y, dy, dx B, rows, cols int) error
	// ActivateBackward is cpu.ActivateBackwardRef over the first n elements:
	// dx[i] = dy[i] * f'(x[i]). dx may be x or dy.
	ActivateBackward(f Activation, x, dy, dx B, n int) error
	// GEGLUBackward is cpu.GEGLUBackwardRef: dx [rows, 2d] from x [rows, 2d]
	// and dy [rows, d]. dx may be x.
	GEGLUBackward(x, dy, dx B, rows, d int) error
	// Upsample2xBackward is cpu.Upsample2xBackwardRef: each 2x2 block of
	// dy [nc, 2h, 2w] summed into dx [nc, h, w]. dx must not overlap dy.
	Upsample2xBackward(dy, dx B, nc, h, w int) error
	// EmbeddingBackward is cpu.EmbeddingBackwardRef: dw [vocab, d] (F32)
	// zeroed, then dy[p, :] ([len(ids), d]) added to row ids[p]. The ids stay
	// in host memory; one outside [0, vocab) is an error.
	EmbeddingBackward(ids []int64, dy B, d, vocab int, dw B) error
	// EmbeddingBackwardSparse is cpu.EmbeddingBackwardSparseRef: grad
	// [len(rows), d] (F32), row k the sum of dy[p, :] over the positions with
	// ids[p] == rows[k] (rows distinct, as cpu.EmbeddingGradRows returns
	// them). ids and rows stay in host memory; an id not among rows is an
	// error.
	EmbeddingBackwardSparse(ids []int64, dy B, d int, rows []int64, grad B) error
}

// DeviceMat is a matrix operand in device memory, as Mat is on the host: the
// stored matrix is row-major with row stride Stride (elements) from the first
// element of Buf, of Buf's dtype; Trans makes the logical operand its
// transpose.
type DeviceMat[B comparable] struct {
	Buf    B
	Stride int
	Trans  bool
}

// GemmParams describes the batched product of Device.Gemm, with an optional
// bias and residual in the epilogue:
//
//	for z < Batch, i < M, j < N:
//	  v = Alpha * sum_p op(A)[z](i,p) * op(B)[z](p,j)
//	  v += Bias[j] (Bias[i] with BiasRows) if Bias is present
//	  v += Beta * C[z][i*Ldc+j] if Beta != 0
//	  v += R[z][i*Ldr+j] if R is present
//	  C[z][i*Ldc+j] = v (rounded once to C's dtype)
//
// where operand z starts StrideA (StrideB, StrideC, StrideR) elements after
// operand z-1. A and B may have any float dtype each; C and R share a dtype,
// F32 or that of A; Bias is F32. When Beta is 0, C is not read (it may hold
// NaN). C must not overlap A, B or R.
type GemmParams[B comparable] struct {
	M, N, K     int
	Alpha, Beta float32
	A, B        DeviceMat[B]
	C           B
	Ldc         int // row stride of C (>= N)

	Batch                              int // number of products; 0 means 1
	StrideA, StrideB, StrideC, StrideR int

	Bias     B    // F32 [N] ([M] with BiasRows), or absent
	BiasRows bool // Bias is indexed by row instead of column
	R        B    // residual of C's layout (row stride Ldr), or absent
	Ldr      int

	// SIMT asks a device with several kernels for its plain one (CUDA: not
	// the tensor cores), for checking one against the other; others ignore it.
	SIMT bool
}

// Batches returns the number of products: Batch, or 1 when Batch is 0.
func (p GemmParams[B]) Batches() int {
	if p.Batch == 0 {
		return 1
	}
	return p.Batch
}
