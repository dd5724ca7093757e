package cpu

// GroupNorm normalises x [n, c, hw] over groups of channels, with optional fused
// SiLU (see GroupNormRef). y may alias x.
func GroupNorm(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool) {
	GroupNormRef(x, y, n, c, hw, groups, eps, gamma, beta, silu)
}

// LayerNorm normalises each row of x [rows, cols] (see LayerNormRef). y may alias x.
func LayerNorm(x, y []float32, rows, cols int, eps float32, gamma, beta []float32) {
	LayerNormRef(x, y, rows, cols, eps, gamma, beta)
}

// Softmax computes a softmax over each row of x [rows, cols] (see SoftmaxRef). y may alias x.
func Softmax(x, y []float32, rows, cols int) {
	SoftmaxRef(x, y, rows, cols)
}
