package cpu

// Activate applies f elementwise (see ActivateRef). y may alias x.
func Activate(f Activation, x, y []float32) {
	ActivateRef(f, x, y)
}

// GEGLU computes y [rows, d] = x[:, :d] * gelu(x[:, d:]) for x [rows, 2d] (see GEGLURef).
func GEGLU(x, y []float32, rows, d int) {
	GEGLURef(x, y, rows, d)
}

// Upsample2x is nearest-neighbour 2x upsampling of x [nc, h, w] into y [nc, 2h, 2w].
func Upsample2x(x, y []float32, nc, h, w int) {
	Upsample2xRef(x, y, nc, h, w)
}

// TimestepEmbedding writes sinusoidal timestep embeddings (see TimestepEmbeddingRef).
func TimestepEmbedding(t []float32, dim int, flipSinToCos bool, shift, scale, maxPeriod float32, out []float32) {
	TimestepEmbeddingRef(t, dim, flipSinToCos, shift, scale, maxPeriod, out)
}
