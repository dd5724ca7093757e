package cpu

// Slice-level wrappers over the elementwise kernels: the assembly (when vecAsm)
// takes the longest prefix whose length is a multiple of 8 and the scalar
// functions of mathfast.go finish the tail. All allow y to alias x.

// vecSigmul sets y[i] = v * sigmoid(k*v*(1 + c*v*v)) with v = (x[i] - m)*a + b.
func vecSigmul(x, y []float32, m, a, b, k, c float32) {
	y = y[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			actSigmulAVX2(&x[0], &y[0], n, m, a, b, -k, c)
		}
	}
	for i := n; i < len(x); i++ {
		y[i] = mfSigmulf((x[i]-m)*a+b, k, c)
	}
}

// vecExpSum sets y[i] = exp(x[i] - m) and returns the sum of the y[i].
func vecExpSum(x, y []float32, m float32) float64 {
	y = y[:len(x)]
	var sum float64
	for len(x) > 0 {
		bx, by := x[:min(len(x), sumBlock)], y[:min(len(x), sumBlock)]
		x, y = x[len(bx):], y[len(bx):]
		n := 0
		if vecAsm {
			if n = len(bx) &^ 7; n > 0 {
				sum += float64(actExpSumAVX2(&bx[0], &by[0], n, m))
			}
		}
		var s float32
		for i := n; i < len(bx); i++ {
			e := mfExpf(bx[i] - m)
			by[i] = e
			s += e
		}
		sum += float64(s)
	}
	return sum
}

// vecGELU sets y[i] = gelu(x[i]) (exact erf form).
func vecGELU(x, y []float32) {
	y = y[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			actGELUAVX2(&x[0], &y[0], n)
		}
	}
	for i := n; i < len(x); i++ {
		y[i] = mfGeluf(x[i])
	}
}

// vecGEGLU sets y[i] = a[i] * gelu(g[i]).
func vecGEGLU(a, g, y []float32) {
	g, y = g[:len(a)], y[:len(a)]
	n := 0
	if vecAsm {
		if n = len(a) &^ 7; n > 0 {
			actGEGLUAVX2(&a[0], &g[0], &y[0], n)
		}
	}
	for i := n; i < len(a); i++ {
		y[i] = a[i] * mfGeluf(g[i])
	}
}
