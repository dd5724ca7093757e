package tensor

// Neural-network ops. Each checks shapes, brings activations to contiguous
// tensors of the device's compute dtype (F32 on the CPU; converting or copying
// only when needed), and dispatches one kernel; results have the compute
// dtype. Weights of matrix products and convolutions may be F32, F16 or BF16
// and are passed to the kernels as they are stored (no float32 copy).
// Optional parameters (bias, gamma, beta) may be nil; they go to the kernels
// as F32.
//
// Each op's shape checks, forward dispatch and backward rule live together,
// one file per op family: linear.go, conv.go, norm.go (GroupNorm,
// LayerNorm), activation.go (Softmax, SiLU/GELU/QuickGELU, GEGLU),
// attention.go, embedding.go (Embedding, TimestepEmbedding), resample.go
// (Upsample2xNearest, Pad2d) and loss.go (MSELoss); the backward ops go
// through the backend (backend.go) as the forwards do.
