package features

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// Image is a decoded image as planes of float32 values in 0..255: Pix holds
// C planes (1 gray or 3 RGB) of H rows of W values.
type Image struct {
	C, H, W int
	Pix     []float32
}

// NewImage returns a zero image of c planes of h x w.
func NewImage(c, h, w int) *Image { return &Image{C: c, H: h, W: w, Pix: make([]float32, c*h*w)} }

// Plane returns plane k (aliasing Pix).
func (im *Image) Plane(k int) []float32 { return im.Pix[k*im.H*im.W : (k+1)*im.H*im.W] }

// FromImage converts img to c planes (3: RGB; 1: gray) of 0..255 values.
// Gray and 16-bit gray images give their value (scaled to 0..255) on every
// plane; colour images with c = 1 give the mean of R, G and B (what
// torchxrayvision's example does with img.mean(2)). Alpha is ignored
// (colours are taken unpremultiplied only for opaque pixels, as decoders
// give X-rays).
func FromImage(img image.Image, c int) *Image {
	if c != 1 && c != 3 {
		panic(fmt.Sprintf("features: FromImage: %d channels (want 1 or 3)", c))
	}
	b := img.Bounds()
	out := NewImage(c, b.Dy(), b.Dx())
	hw := out.H * out.W
	for y := 0; y < out.H; y++ {
		for x := 0; x < out.W; x++ {
			i := y*out.W + x
			px := img.At(b.Min.X+x, b.Min.Y+y)
			var r, g, bl float32
			switch p := px.(type) {
			case color.Gray:
				r = float32(p.Y)
				g, bl = r, r
			case color.Gray16:
				r = float32(p.Y) / 257
				g, bl = r, r
			default:
				r16, g16, b16, _ := px.RGBA()
				r, g, bl = float32(r16>>8), float32(g16>>8), float32(b16>>8)
			}
			if c == 1 {
				out.Pix[i] = (r + g + bl) / 3
			} else {
				out.Pix[i], out.Pix[hw+i], out.Pix[2*hw+i] = r, g, bl
			}
		}
	}
	return out
}

// taps are the weights of one output sample: src[start+j]*w[j] summed;
// indices outside the input read as 0.
type taps struct {
	start int
	w     []float64
}

// pilBicubicTaps are Pillow's precompute_coeffs for BICUBIC (a = -0.5,
// support 2 scaled by the downscale factor, weights normalised to sum 1),
// resizing in samples to out.
func pilBicubicTaps(in, out int) []taps {
	scale := float64(in) / float64(out)
	fscale := max(scale, 1)
	support := 2 * fscale
	cubic := func(x float64) float64 {
		const a = -0.5
		x = math.Abs(x)
		switch {
		case x < 1:
			return ((a+2)*x-(a+3))*x*x + 1
		case x < 2:
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	}
	t := make([]taps, out)
	for o := range t {
		center := (float64(o) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		w := make([]float64, hi-lo)
		var sum float64
		for j := range w {
			w[j] = cubic((float64(j+lo) - center + 0.5) / fscale)
			sum += w[j]
		}
		if sum != 0 {
			for j := range w {
				w[j] /= sum
			}
		}
		t[o] = taps{lo, w}
	}
	return t
}

// resample applies rows taps along the columns of an h x w plane (horizontal,
// when horiz) or along its rows, summing in float64; round says whether the
// result is rounded to float32 (Pillow's F images) or kept.
func resample(src []float64, h, w int, t []taps, horiz, round bool) []float64 {
	var oh, ow int
	if horiz {
		oh, ow = h, len(t)
	} else {
		oh, ow = len(t), w
	}
	dst := make([]float64, oh*ow)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var s float64
			if horiz {
				tp := t[x]
				row := src[y*w : (y+1)*w]
				for j, wt := range tp.w {
					if k := tp.start + j; k >= 0 && k < w {
						s += row[k] * wt
					}
				}
			} else {
				tp := t[y]
				for j, wt := range tp.w {
					if k := tp.start + j; k >= 0 && k < h {
						s += src[k*w+x] * wt
					}
				}
			}
			if round {
				s = float64(float32(s))
			}
			dst[y*ow+x] = s
		}
	}
	return dst
}

func toF64(p []float32) []float64 {
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = float64(v)
	}
	return out
}

// ResizeBicubic resizes every plane of im to w x h as Pillow does for a
// 32-bit float ("F") image with Image.resize((w, h), Image.BICUBIC):
// separable antialiased bicubic (a = -0.5, support 2 scaled by the
// downscale factor), horizontal pass then vertical, float64 sums and float32
// results — clean-fid's "clean" resize, which calls exactly that per
// channel. Values are not clipped (clean-fid clips to 0..255 after).
func ResizeBicubic(im *Image, w, h int) *Image {
	if w < 1 || h < 1 {
		panic(fmt.Sprintf("features: ResizeBicubic: size %dx%d", w, h))
	}
	out := NewImage(im.C, h, w)
	var th, tv []taps
	if w != im.W {
		th = pilBicubicTaps(im.W, w)
	}
	if h != im.H {
		tv = pilBicubicTaps(im.H, h)
	}
	for k := 0; k < im.C; k++ {
		p, pw := toF64(im.Plane(k)), im.W
		if th != nil {
			p, pw = resample(p, im.H, pw, th, true, true), w
		}
		if tv != nil {
			p = resample(p, im.H, pw, tv, false, true)
		}
		dst := out.Plane(k)
		for i, v := range p {
			dst[i] = float32(v)
		}
	}
	return out
}

// gaussianTaps are scipy.ndimage.gaussian_filter1d's weights (radius
// int(4 sigma + 0.5), normalised) centred on each of n samples.
func gaussianTaps(n int, sigma float64) []taps {
	r := int(4*sigma + 0.5)
	w := make([]float64, 2*r+1)
	var sum float64
	for j := range w {
		x := float64(j - r)
		w[j] = math.Exp(-0.5 * x * x / (sigma * sigma))
		sum += w[j]
	}
	for j := range w {
		w[j] /= sum
	}
	t := make([]taps, n)
	for i := range t {
		t[i] = taps{i - r, w}
	}
	return t
}

// linearZoomTaps are scipy.ndimage.zoom's order-1 weights with
// grid_mode=True: output o samples the input at (o + 0.5) in/out - 0.5,
// linearly between its neighbours (outside the input: 0, mode grid-constant).
func linearZoomTaps(in, out int) []taps {
	t := make([]taps, out)
	for o := range t {
		c := (float64(o)+0.5)*float64(in)/float64(out) - 0.5
		i0 := math.Floor(c)
		f := c - i0
		t[o] = taps{int(i0), []float64{1 - f, f}}
	}
	return t
}

// ResizeXRV resizes every plane of im to size x size as torchxrayvision's
// XRayResizer does (skimage.transform.resize(mode="constant",
// preserve_range=True), order 1): when shrinking, a Gaussian blur with sigma
// (scale - 1)/2 per axis (zeros beyond the edges, truncated at 4 sigma),
// then linear interpolation at the pixel centres (zoom with grid_mode), the
// result clipped to the input's range. Computed in float64.
func ResizeXRV(im *Image, size int) *Image {
	if size < 1 {
		panic(fmt.Sprintf("features: ResizeXRV: size %d", size))
	}
	out := NewImage(im.C, size, size)
	sy, sx := float64(im.H)/float64(size), float64(im.W)/float64(size)
	down := sy > 1 || sx > 1
	for k := 0; k < im.C; k++ {
		src := im.Plane(k)
		p := toF64(src)
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range p {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if down {
			if s := math.Max(0, (sy-1)/2); s > 0 {
				p = resample(p, im.H, im.W, gaussianTaps(im.H, s), false, false)
			}
			if s := math.Max(0, (sx-1)/2); s > 0 {
				p = resample(p, im.H, im.W, gaussianTaps(im.W, s), true, false)
			}
		}
		p = resample(p, im.H, im.W, linearZoomTaps(im.H, size), false, false)
		p = resample(p, size, im.W, linearZoomTaps(im.W, size), true, false)
		dst := out.Plane(k)
		for i, v := range p {
			dst[i] = float32(math.Min(math.Max(v, lo), hi))
		}
	}
	return out
}

// Crop returns the h x w window of im at (top, left).
func Crop(im *Image, top, left, h, w int) *Image {
	if top < 0 || left < 0 || h < 1 || w < 1 || top+h > im.H || left+w > im.W {
		panic(fmt.Sprintf("features: Crop: %dx%d at (%d, %d) of a %dx%d image", h, w, top, left, im.H, im.W))
	}
	out := NewImage(im.C, h, w)
	for k := 0; k < im.C; k++ {
		src, dst := im.Plane(k), out.Plane(k)
		for y := 0; y < h; y++ {
			copy(dst[y*w:(y+1)*w], src[(top+y)*im.W+left:(top+y)*im.W+left+w])
		}
	}
	return out
}

// toTensor stacks images of one size into [N, C, H, W] with v -> v*a + b.
func toTensor(ims []*Image, a, b float32) *tensor.Tensor {
	c, h, w := ims[0].C, ims[0].H, ims[0].W
	data := make([]float32, 0, len(ims)*c*h*w)
	for _, im := range ims {
		if im.C != c || im.H != h || im.W != w {
			panic("features: images of different sizes in one batch")
		}
		for _, v := range im.Pix {
			data = append(data, v*a+b)
		}
	}
	return tensor.FromFloat32(data, len(ims), c, h, w)
}

func checkBatch(op string, ims []*Image, c ...int) {
	if len(ims) == 0 {
		panic("features: " + op + ": no images")
	}
	for _, im := range ims {
		if im == nil || len(im.Pix) != im.C*im.H*im.W || im.H < 1 || im.W < 1 {
			panic("features: " + op + ": malformed image")
		}
		ok := false
		for _, k := range c {
			ok = ok || im.C == k
		}
		if !ok {
			panic(fmt.Sprintf("features: %s: %d-channel image (want %v)", op, im.C, c))
		}
	}
}

// PreprocessInception returns clean-fid's "clean" input for the Inception:
// each image (gray images repeated to RGB) resized to 299x299 by
// ResizeBicubic (skipped at 299x299), clipped to 0..255, scaled to [0, 1]:
// [N, 3, 299, 299] for Inception.Features.
func PreprocessInception(ims []*Image) *tensor.Tensor {
	checkBatch("PreprocessInception", ims, 1, 3)
	rs := make([]*Image, len(ims))
	for i, im := range ims {
		if im.C == 1 {
			rgb := NewImage(3, im.H, im.W)
			for k := 0; k < 3; k++ {
				copy(rgb.Plane(k), im.Pix)
			}
			im = rgb
		}
		r := ResizeBicubic(im, 299, 299)
		for j, v := range r.Pix {
			r.Pix[j] = min(max(v, 0), 255)
		}
		rs[i] = r
	}
	return toTensor(rs, 1.0/255, 0)
}

// XRVNormalize maps 8-bit values to torchxrayvision's range:
// (2 v/255 - 1) * 1024, i.e. v/255*2048 - 1024 (xrv.datasets.normalize(img, 255)).
func XRVNormalize(v float32) float32 { return (2*(v/255) - 1) * 1024 }

// PreprocessXRV returns torchxrayvision's input for the DenseNet: each image
// in XRV's range (XRVNormalize; colour images averaged over R, G, B), centre
// cropped to a square (XRayCenterCrop: the side min(H, W), the window at W/2
// - side/2 and H/2 - side/2, integer division), resized to 224x224 by
// ResizeXRV (XRayResizer): [N, 1, 224, 224].
func PreprocessXRV(ims []*Image) *tensor.Tensor {
	checkBatch("PreprocessXRV", ims, 1, 3)
	rs := make([]*Image, len(ims))
	for i, im := range ims {
		g := NewImage(1, im.H, im.W)
		hw := im.H * im.W
		for j := range g.Pix {
			var s float32
			for k := 0; k < im.C; k++ {
				s += XRVNormalize(im.Pix[k*hw+j])
			}
			g.Pix[j] = s / float32(im.C)
		}
		side := min(im.H, im.W)
		g = Crop(g, im.H/2-side/2, im.W/2-side/2, side, side)
		rs[i] = ResizeXRV(g, 224)
	}
	return toTensor(rs, 1, 0)
}

// CLIP's image normalisation (OpenAI's preprocess and transformers'
// CLIPImageProcessor).
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// PreprocessCLIP returns CLIP's input at size x size (224 for ViT-B/32): the
// shorter side resized to size by ResizeBicubic (the longer to
// int(size*long/short)), a centre crop of size x size (torchvision's
// CenterCrop: offsets round((H - size)/2), half to even), values /255, then
// (v - CLIPMean[c]) / CLIPStd[c]: [N, 3, size, size]. Gray images are
// repeated to RGB. OpenAI's and transformers' preprocessors resize 8-bit RGB
// images, whose intermediate rounding to integers this float resize skips
// (differences below one gray level).
func PreprocessCLIP(ims []*Image, size int) *tensor.Tensor {
	checkBatch("PreprocessCLIP", ims, 1, 3)
	data := make([]float32, 0, len(ims)*3*size*size)
	for _, im := range ims {
		h, w := size, size
		if im.H < im.W {
			w = int(float64(size) * float64(im.W) / float64(im.H))
		} else {
			h = int(float64(size) * float64(im.H) / float64(im.W))
		}
		r := ResizeBicubic(im, w, h)
		top := int(math.RoundToEven(float64(h-size) / 2))
		left := int(math.RoundToEven(float64(w-size) / 2))
		r = Crop(r, top, left, size, size)
		for k := 0; k < 3; k++ {
			p := r.Plane(min(k, r.C-1))
			for _, v := range p {
				data = append(data, (v/255-CLIPMean[k])/CLIPStd[k])
			}
		}
	}
	return tensor.FromFloat32(data, len(ims), 3, size, size)
}
