package cpu

// Conv2d computes the convolution described by p (see Conv2dRef): x [N, C, H, W],
// w [K, C*R*S] (F32, F16 or BF16), bias [K] or nil, y [N, K, OutH, OutW].
func Conv2d(p ConvParams, x []float32, w Mat, bias []float32, y []float32) {
	Conv2dRef(p, x, w, bias, y)
}
