package metrics

import (
	"errors"
	"fmt"
	"math"
)

// Gray is a single-channel float image, values in [0, data range].
type Gray struct {
	// W and H are the width and height in pixels.
	W, H int
	// Pix holds the pixels row by row: [H, W].
	Pix []float64
}

// NewGray returns a zero w×h image.
func NewGray(w, h int) Gray { return Gray{W: w, H: h, Pix: make([]float64, w*h)} }

// SSIMOptions are the parameters of SSIM and MS-SSIM. The zero value is not
// usable; start from DefaultSSIMOptions.
type SSIMOptions struct {
	// DataRange is the value range of the pixels (1 for [0,1] images, 255
	// for 8-bit ones); C1 = (K1·DataRange)², C2 = (K2·DataRange)².
	DataRange float64
	// WinSize is the length of the Gaussian window (odd) and WinSigma its
	// standard deviation.
	WinSize  int
	WinSigma float64
	// K1 and K2 are SSIM's stabilising constants.
	K1, K2 float64
	// Weights are MS-SSIM's per-scale exponents, finest scale first; their
	// count is the number of scales.
	Weights []float64
	// NonNegative clamps SSIM at 0 (pytorch_msssim's nonnegative_ssim);
	// MS-SSIM always clamps.
	NonNegative bool
}

// DefaultSSIMOptions returns pytorch_msssim's defaults for the given data
// range: an 11-tap Gaussian window with σ = 1.5, K = (0.01, 0.03), and the
// five MS-SSIM weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
func DefaultSSIMOptions(dataRange float64) SSIMOptions {
	return SSIMOptions{
		DataRange: dataRange,
		WinSize:   11,
		WinSigma:  1.5,
		K1:        0.01,
		K2:        0.03,
		Weights:   []float64{0.0448, 0.2856, 0.3001, 0.2363, 0.1333},
	}
}

// SSIM returns the structural similarity of two grayscale images with
// pytorch_msssim's defaults (see SSIMOptions.SSIM).
func SSIM(x, y Gray, dataRange float64) (float64, error) {
	return DefaultSSIMOptions(dataRange).SSIM(x, y)
}

// MSSSIM returns the multi-scale structural similarity of two grayscale
// images with pytorch_msssim's defaults (see SSIMOptions.MSSSIM).
func MSSSIM(x, y Gray, dataRange float64) (float64, error) {
	return DefaultSSIMOptions(dataRange).MSSSIM(x, y)
}

func (o SSIMOptions) check(x, y Gray) error {
	if x.W != y.W || x.H != y.H {
		return fmt.Errorf("metrics: SSIM: images differ in size (%dx%d and %dx%d)", x.W, x.H, y.W, y.H)
	}
	if len(x.Pix) != x.W*x.H || len(y.Pix) != y.W*y.H {
		return errors.New("metrics: SSIM: pixel count does not match the image size")
	}
	if o.WinSize < 1 || o.WinSize%2 != 1 {
		return fmt.Errorf("metrics: SSIM: window size %d must be odd", o.WinSize)
	}
	if !(o.DataRange > 0) || !(o.WinSigma > 0) {
		return errors.New("metrics: SSIM: data range and window sigma must be positive")
	}
	return nil
}

// window returns the normalised 1-D Gaussian: g[i] ∝ exp(-(i-⌊n/2⌋)²/(2σ²)).
func (o SSIMOptions) window() []float64 {
	g := make([]float64, o.WinSize)
	var sum float64
	for i := range g {
		c := float64(i - o.WinSize/2)
		g[i] = math.Exp(-c * c / (2 * o.WinSigma * o.WinSigma))
		sum += g[i]
	}
	for i := range g {
		g[i] /= sum
	}
	return g
}

// SSIM returns the mean structural similarity of x and y, as
// pytorch_msssim.ssim computes it for one channel: with the window g applied
// separably and without padding ("valid": the maps are (H-n+1)×(W-n+1)),
//
//	μx = g∗x, μy = g∗y, σx² = g∗x² - μx², σy² = g∗y² - μy², σxy = g∗(xy) - μxμy,
//	cs  = (2σxy + C2) / (σx² + σy² + C2),
//	map = (2μxμy + C1) / (μx² + μy² + C1) · cs,
//
// and SSIM is the mean of map (clamped at 0 with NonNegative). Both sides
// must be at least WinSize pixels.
func (o SSIMOptions) SSIM(x, y Gray) (float64, error) {
	if err := o.check(x, y); err != nil {
		return 0, err
	}
	if x.W < o.WinSize || x.H < o.WinSize {
		return 0, fmt.Errorf("metrics: SSIM: image of %dx%d is smaller than the %d-pixel window", x.W, x.H, o.WinSize)
	}
	s, _ := o.ssimCS(x, y, o.window())
	if o.NonNegative {
		s = max(s, 0)
	}
	return s, nil
}

// MSSSIM returns the multi-scale SSIM of x and y as pytorch_msssim.ms_ssim
// computes it for one channel: for scales i = 0..L-1 (L = len(Weights)),
// compute SSIM's mean cs_i and mean ssim_i, then halve both images with 2×2
// average pooling (zero padding of 1 on both sides of an odd dimension,
// counted in the average, as torch's avg_pool2d with padding = size%2
// does). The result is
//
//	Π_{i<L-1} max(cs_i, 0)^{w_i} · max(ssim_{L-1}, 0)^{w_{L-1}}.
//
// The shorter side must exceed (WinSize-1)·2^(L-1) pixels (160 for the
// defaults).
func (o SSIMOptions) MSSSIM(x, y Gray) (float64, error) {
	if err := o.check(x, y); err != nil {
		return 0, err
	}
	levels := len(o.Weights)
	if levels == 0 {
		return 0, errors.New("metrics: MS-SSIM: no scale weights")
	}
	minSide := (o.WinSize - 1) << (levels - 1)
	if min(x.W, x.H) <= minSide {
		return 0, fmt.Errorf("metrics: MS-SSIM: image of %dx%d is too small: the shorter side must be larger than %d for %d scales", x.W, x.H, minSide, levels)
	}
	win := o.window()
	result := 1.0
	for i, w := range o.Weights {
		s, cs := o.ssimCS(x, y, win)
		if i < levels-1 {
			result *= math.Pow(max(cs, 0), w)
			x, y = avgPool2(x), avgPool2(y)
			continue
		}
		result *= math.Pow(max(s, 0), w)
	}
	return result, nil
}

// ssimCS returns the means of the SSIM map and of the contrast-structure map.
func (o SSIMOptions) ssimCS(x, y Gray, win []float64) (ssim, cs float64) {
	c1 := (o.K1 * o.DataRange) * (o.K1 * o.DataRange)
	c2 := (o.K2 * o.DataRange) * (o.K2 * o.DataRange)
	n := x.W * x.H
	xx := make([]float64, n)
	yy := make([]float64, n)
	xy := make([]float64, n)
	for i := range xx {
		a, b := x.Pix[i], y.Pix[i]
		xx[i], yy[i], xy[i] = a*a, b*b, a*b
	}
	ow, oh := x.W-len(win)+1, x.H-len(win)+1
	tmp := make([]float64, x.H*ow)
	mx := filterValid(x.Pix, x.W, x.H, win, tmp)
	my := filterValid(y.Pix, x.W, x.H, win, tmp)
	mxx := filterValid(xx, x.W, x.H, win, tmp)
	myy := filterValid(yy, x.W, x.H, win, tmp)
	mxy := filterValid(xy, x.W, x.H, win, tmp)
	var sumS, sumCS float64
	for i := range mx {
		m1, m2 := mx[i], my[i]
		s1 := mxx[i] - m1*m1
		s2 := myy[i] - m2*m2
		s12 := mxy[i] - m1*m2
		c := (2*s12 + c2) / (s1 + s2 + c2)
		sumCS += c
		sumS += (2*m1*m2 + c1) / (m1*m1 + m2*m2 + c1) * c
	}
	cnt := float64(ow * oh)
	return sumS / cnt, sumCS / cnt
}

// filterValid convolves the w×h image src with win along rows, then along
// columns, without padding; the result is (w-n+1)×(h-n+1). tmp holds
// h×(w-n+1) values.
func filterValid(src []float64, w, h int, win []float64, tmp []float64) []float64 {
	n := len(win)
	ow, oh := w-n+1, h-n+1
	for r := 0; r < h; r++ {
		row := src[r*w : (r+1)*w]
		out := tmp[r*ow : (r+1)*ow]
		for c := range out {
			var s float64
			for k, g := range win {
				s += g * row[c+k]
			}
			out[c] = s
		}
	}
	dst := make([]float64, ow*oh)
	for r := 0; r < oh; r++ {
		out := dst[r*ow : (r+1)*ow]
		for k, g := range win {
			in := tmp[(r+k)*ow : (r+k+1)*ow]
			for c := range out {
				out[c] += g * in[c]
			}
		}
	}
	return dst
}

// avgPool2 halves an image with 2×2 average pooling, stride 2, padding
// p = size%2 zeros on both sides of each dimension, dividing by 4 always
// (torch.nn.functional.avg_pool2d(x, 2, padding=(h%2, w%2)) with
// count_include_pad): the output has ⌊(size+2p-2)/2⌋+1 pixels and output
// pixel i covers input pixels 2i-p and 2i-p+1.
func avgPool2(x Gray) Gray {
	pw, ph := x.W%2, x.H%2
	ow, oh := (x.W+2*pw-2)/2+1, (x.H+2*ph-2)/2+1
	out := NewGray(ow, oh)
	at := func(r, c int) float64 {
		if r < 0 || r >= x.H || c < 0 || c >= x.W {
			return 0
		}
		return x.Pix[r*x.W+c]
	}
	for r := 0; r < oh; r++ {
		r0 := 2*r - ph
		for c := 0; c < ow; c++ {
			c0 := 2*c - pw
			out.Pix[r*ow+c] = (at(r0, c0) + at(r0, c0+1) + at(r0+1, c0) + at(r0+1, c0+1)) / 4
		}
	}
	return out
}

// MeanPairwiseMSSSIM returns the mean MS-SSIM over all unordered pairs of
// imgs (n(n-1)/2 pairs), with the options o. It needs at least two images.
func (o SSIMOptions) MeanPairwiseMSSSIM(imgs []Gray) (float64, error) {
	if len(imgs) < 2 {
		return 0, fmt.Errorf("metrics: MS-SSIM diversity needs at least 2 images, got %d", len(imgs))
	}
	var sum float64
	pairs := 0
	for i := range imgs {
		for j := i + 1; j < len(imgs); j++ {
			v, err := o.MSSSIM(imgs[i], imgs[j])
			if err != nil {
				return 0, fmt.Errorf("images %d and %d: %w", i, j, err)
			}
			sum += v
			pairs++
		}
	}
	return sum / float64(pairs), nil
}

// PromptDiversity is RoentGen's within-prompt diversity score: the mean
// MS-SSIM (pytorch_msssim defaults, data_range = 1) over all pairs of the
// images generated for one prompt — 6 pairs for its 4 images per prompt.
// Images are grayscale in [0, 1]. Lower means more diverse.
func PromptDiversity(imgs []Gray) (float64, error) {
	return DefaultSSIMOptions(1).MeanPairwiseMSSSIM(imgs)
}
