package cpu

// Gemm computes C = alpha*op(A)*op(B) + beta*C (see GemmRef) on up to Threads()
// goroutines. op(A) is m x k, op(B) is k x n, C is m x n with row stride ldc.
// 16-bit operands are converted to float32 while packing.
func Gemm(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int) {
	GemmRef(m, n, k, alpha, a, b, beta, c, ldc)
}

// GemmSerial is Gemm on the calling goroutine only, for callers that parallelise
// over independent products themselves (batched matmul, attention tiles).
func GemmSerial(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int) {
	GemmRef(m, n, k, alpha, a, b, beta, c, ldc)
}

// Sgemm is the BLAS-style float32 entry point: C = alpha*op(A)*op(B) + beta*C, with
// op(X) = X^T when transX is set, A stored with row stride lda, B with ldb.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Gemm(m, n, k, alpha, F32Mat(a, lda, transA), F32Mat(b, ldb, transB), beta, c, ldc)
}

// GemmBatched computes batch independent products: for i < batch, the operands
// start at element offsets i*strideA, i*strideB, i*strideC of a, b and c (a stride
// of 0 broadcasts one operand over the batch). It parallelises over the batch and
// within products as the sizes call for.
func GemmBatched(batch, m, n, k int, alpha float32, a Mat, strideA int, b Mat, strideB int, beta float32, c []float32, ldc, strideC int) {
	for i := 0; i < batch; i++ {
		Gemm(m, n, k, alpha, offsetMat(a, i*strideA), offsetMat(b, i*strideB), beta, c[i*strideC:], ldc)
	}
}

// offsetMat returns m with its data advanced by off elements.
func offsetMat(m Mat, off int) Mat {
	if m.DType == F32 {
		m.F32 = m.F32[off:]
	} else {
		m.U16 = m.U16[off:]
	}
	return m
}
