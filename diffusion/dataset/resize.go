package dataset

import (
	"fmt"
	"math"
)

// Preprocessing as diffusers' train_text_to_image.py:
//
//	transforms.Resize(resolution, interpolation=BILINEAR)  // shorter side
//	transforms.CenterCrop(resolution)
//	transforms.ToTensor()                                  // [0,1]
//	transforms.Normalize([0.5], [0.5])                     // [-1,1]
//
// torchvision's Resize on a PIL image calls PIL's Image.resize with
// BILINEAR, which is a separable convolution with the triangle filter whose
// support grows with the downscaling factor (antialiasing). resample below
// computes the same filter weights as PIL (window centres at (i+0.5)*scale,
// taps truncated like PIL's int casts, weights normalised per output pixel)
// but in float32 on [0,1] values, where PIL rounds to 8 bits after each pass
// with 22-bit fixed-point weights; the results differ by about one 8-bit
// step at most. Sizes follow torchvision: the shorter side becomes the
// resolution and the longer int(resolution*long/short) (truncated);
// CenterCrop's offsets are int(round((size-resolution)/2)) with Python's
// round-half-to-even.

// CheckResolution returns an error unless r is a positive multiple of 8 (the
// VAE downsamples by 8) and at most 8192.
func CheckResolution(r int) error {
	if r <= 0 || r%8 != 0 || r > 8192 {
		return fmt.Errorf("resolution %d: expected a positive multiple of 8 (the VAE downsamples by 8), at most 8192", r)
	}
	return nil
}

// resizedSize returns torchvision's Resize(res) output size for w x h.
func resizedSize(w, h, res int) (nw, nh int) {
	if w <= h {
		return res, int(float64(res) * float64(h) / float64(w))
	}
	return int(float64(res) * float64(w) / float64(h)), res
}

// roundHalfEven is Python 3's round() for the crop offsets.
func roundHalfEven(x float64) int { return int(math.RoundToEven(x)) }

// filterTaps holds, for each output index, the first input index and the
// weights of the inputs it reads.
type filterTaps struct {
	first []int
	n     []int
	w     []float32 // [out][ksize]
	ksize int
}

// triangleTaps computes PIL's BILINEAR resampling weights from an input of
// size in to an output of size out, for the output indices [o0, o0+count).
func triangleTaps(in, out, o0, count int) filterTaps {
	scale := float64(in) / float64(out)
	fs := math.Max(scale, 1)
	support := fs // bilinear filter support is 1
	ksize := int(math.Ceil(support))*2 + 1
	t := filterTaps{first: make([]int, count), n: make([]int, count), w: make([]float32, count*ksize), ksize: ksize}
	ss := 1 / fs
	for i := 0; i < count; i++ {
		center := (float64(o0+i) + 0.5) * scale
		xmin := int(center - support + 0.5) // C truncation, as PIL
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > in {
			xmax = in
		}
		n := xmax - xmin
		if n > ksize {
			n = ksize
		}
		if n < 1 { // cannot happen for in, out >= 1; keep the loop safe
			xmin, n = min(max(int(center), 0), in-1), 1
		}
		ws := t.w[i*ksize : i*ksize+n]
		var sum float64
		wtmp := make([]float64, n)
		for k := 0; k < n; k++ {
			x := math.Abs((float64(k+xmin) - center + 0.5) * ss)
			v := 0.0
			if x < 1 {
				v = 1 - x
			}
			wtmp[k] = v
			sum += v
		}
		for k := range ws {
			if sum != 0 {
				ws[k] = float32(wtmp[k] / sum)
			}
		}
		t.first[i], t.n[i] = xmin, n
	}
	return t
}

// preprocess resizes the shorter side of src to res, centre-crops res x res,
// optionally flips left-right, and writes [3, res, res] values in [-1,1]
// (grayscale replicated to three channels) into dst, which must have
// 3*res*res elements.
func preprocess(src *floatImage, res int, flip bool, dst []float32) {
	nw, nh := resizedSize(src.w, src.h, res)
	left := roundHalfEven(float64(nw-res) / 2)
	top := roundHalfEven(float64(nh-res) / 2)
	hx := triangleTaps(src.w, nw, left, res)
	vy := triangleTaps(src.h, nh, top, res)
	plane := res * res
	tmp := make([]float32, src.h*res)
	for c := 0; c < 3; c++ {
		out := dst[c*plane : (c+1)*plane]
		if c >= len(src.pix) {
			copy(out, dst[:plane]) // grayscale: replicate channel 0
			continue
		}
		in := src.pix[c]
		// Horizontal pass: every input row, the crop's columns.
		if nw == src.w {
			for y := 0; y < src.h; y++ {
				copy(tmp[y*res:(y+1)*res], in[y*src.w+left:y*src.w+left+res])
			}
		} else {
			for y := 0; y < src.h; y++ {
				row := in[y*src.w : (y+1)*src.w]
				trow := tmp[y*res : (y+1)*res]
				for x := 0; x < res; x++ {
					f, n := hx.first[x], hx.n[x]
					ws := hx.w[x*hx.ksize : x*hx.ksize+n]
					seg := row[f : f+n]
					var s float32
					for k, w := range ws {
						s += w * seg[k]
					}
					trow[x] = s
				}
			}
		}
		// Vertical pass: the crop's rows.
		for y := 0; y < res; y++ {
			orow := out[y*res : (y+1)*res]
			if nh == src.h {
				copy(orow, tmp[(top+y)*res:(top+y+1)*res])
			} else {
				f, n := vy.first[y], vy.n[y]
				ws := vy.w[y*vy.ksize : y*vy.ksize+n]
				for x := range orow {
					orow[x] = 0
				}
				for k, w := range ws {
					trow := tmp[(f+k)*res : (f+k+1)*res]
					for x, v := range trow {
						orow[x] += w * v
					}
				}
			}
			if flip {
				for i, j := 0, res-1; i < j; i, j = i+1, j-1 {
					orow[i], orow[j] = orow[j], orow[i]
				}
			}
			for x, v := range orow {
				// [0,1] -> [-1,1]; clamp the filter's rounding overshoot.
				v = v*2 - 1
				if v < -1 {
					v = -1
				} else if v > 1 {
					v = 1
				}
				orow[x] = v
			}
		}
	}
}
