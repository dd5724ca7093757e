package pipeline

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // init images may be JPEG
	_ "image/png"
	"math"
	"os"

	"github.com/roentgo/roentgo/tensor"
)

// LoadImage decodes a PNG or JPEG file (an init image).
func LoadImage(path string) (image.Image, error) { return loadImage(path, "init image") }

// LoadMask decodes a PNG or JPEG file (an inpainting mask).
func LoadMask(path string) (image.Image, error) { return loadImage(path, "mask") }

func loadImage(path, what string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %s: %v", what, err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %s %s: %v; expected a PNG or JPEG file", what, path, err)
	}
	if b := img.Bounds(); b.Dx() < 1 || b.Dy() < 1 {
		return nil, fmt.Errorf("pipeline: %s %s is empty", what, path)
	}
	return img, nil
}

// ImageToTensor turns img into the VAE's input [1, 3, height, width] with
// values in [-1, 1]: the largest centred region with the target's aspect
// ratio is cut out and resized to width x height (an antialiased triangle
// filter, like PIL's bilinear resize, rounded to 8 bits), grayscale and
// paletted images become three equal channels, alpha is ignored, and each
// 8-bit value v becomes 2 (v/255) - 1 in float32, as diffusers' preprocess
// computes it.
func ImageToTensor(img image.Image, width, height int) *tensor.Tensor {
	if width < 1 || height < 1 {
		panic(fmt.Sprintf("pipeline: ImageToTensor: size %dx%d", width, height))
	}
	rgb := toRGBPlanes(img)
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	cx, cy, cw, ch := cropRegion(sw, sh, width, height)
	out := make([]float32, 3*width*height)
	for c := 0; c < 3; c++ {
		plane := rgb[c]
		var res []float32
		if cw == width && ch == height {
			res = make([]float32, width*height)
			for y := 0; y < height; y++ {
				for x := 0; x < width; x++ {
					res[y*width+x] = plane[(cy+y)*sw+cx+x]
				}
			}
		} else {
			res = resizePlane(plane, sw, cx, cy, cw, ch, width, height)
		}
		for i, v := range res {
			q := float32(math.Round(math.Max(0, math.Min(255, float64(v)))))
			out[c*width*height+i] = 2*(q/255) - 1
		}
	}
	return tensor.FromFloat32(out, 1, 3, height, width)
}

// cropRegion returns the largest centred region (x, y, w, h) of an sw x sh
// image with the aspect ratio of width x height.
func cropRegion(sw, sh, width, height int) (cx, cy, cw, ch int) {
	cx, cy, cw, ch = 0, 0, sw, sh
	if sw*height > sh*width { // too wide
		cw = max(int(math.Round(float64(sh)*float64(width)/float64(height))), 1)
		cx = (sw - cw) / 2
	} else if sw*height < sh*width { // too tall
		ch = max(int(math.Round(float64(sw)*float64(height)/float64(width))), 1)
		cy = (sh - ch) / 2
	}
	return cx, cy, cw, ch
}

// toRGBPlanes returns the 8-bit R, G and B planes of img (values 0..255).
func toRGBPlanes(img image.Image) [3][]float32 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	var p [3][]float32
	for c := range p {
		p[c] = make([]float32, w*h)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			i := y*w + x
			p[0][i], p[1][i], p[2][i] = float32(c.R), float32(c.G), float32(c.B)
		}
	}
	return p
}

// resizePlane resamples the region (cx, cy, cw, ch) of a plane of row
// length stride to w x h with a separable triangle filter whose support
// widens when shrinking (antialiasing), as PIL's bilinear resize does.
func resizePlane(src []float32, stride, cx, cy, cw, ch, w, h int) []float32 {
	// Horizontal pass: [ch, w].
	tmp := make([]float32, ch*w)
	wx := filterWeights(cw, w)
	for y := 0; y < ch; y++ {
		row := src[(cy+y)*stride+cx:]
		for x := 0; x < w; x++ {
			var s float64
			for _, t := range wx[x] {
				s += float64(row[t.i]) * t.w
			}
			tmp[y*w+x] = float32(s)
		}
	}
	out := make([]float32, w*h)
	wy := filterWeights(ch, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float64
			for _, t := range wy[y] {
				s += float64(tmp[t.i*w+x]) * t.w
			}
			out[y*w+x] = float32(s)
		}
	}
	return out
}

type tap struct {
	i int
	w float64
}

// filterWeights returns, for each of the n output samples, the input taps
// of a triangle filter from in samples (normalised weights).
func filterWeights(in, n int) [][]tap {
	scale := float64(in) / float64(n)
	support := 1.0
	if scale > 1 {
		support = scale
	}
	out := make([][]tap, n)
	for o := range out {
		center := (float64(o) + 0.5) * scale
		lo := max(int(math.Floor(center-support)), 0)
		hi := min(int(math.Ceil(center+support)), in-1)
		var taps []tap
		var sum float64
		for i := lo; i <= hi; i++ {
			d := math.Abs((float64(i) + 0.5 - center) / support)
			if d >= 1 {
				continue
			}
			taps = append(taps, tap{i, 1 - d})
			sum += 1 - d
		}
		if sum == 0 { // cannot happen for in >= 1, kept for safety
			taps = []tap{{min(int(center), in-1), 1}}
			sum = 1
		}
		for k := range taps {
			taps[k].w /= sum
		}
		out[o] = taps
	}
	return out
}

// TensorToImages converts decoded VAE outputs x [N, 3, H, W] (raw, in
// about [-1, 1]) into 8-bit RGB images as diffusers does: v =
// clamp(x/2 + 0.5, 0, 1) in float32, then round(v*255) (half to even, like
// numpy).
func TensorToImages(x *tensor.Tensor) []*image.NRGBA {
	s := x.Shape()
	if len(s) != 4 || s[1] != 3 {
		panic(fmt.Sprintf("pipeline: TensorToImages: shape %v, want [N, 3, H, W]", s))
	}
	n, h, w := s[0], s[2], s[3]
	data := x.Float32s()
	out := make([]*image.NRGBA, n)
	for i := range out {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for c := 0; c < 3; c++ {
			plane := data[(i*3+c)*h*w:]
			for p := 0; p < h*w; p++ {
				img.Pix[4*p+c] = ToUint8(plane[p])
			}
		}
		for p := 0; p < h*w; p++ {
			img.Pix[4*p+3] = 255
		}
		out[i] = img
	}
	return out
}

// UnitValue is the image value diffusers computes from a decoded sample:
// clamp(x/2 + 0.5, 0, 1) in float32.
func UnitValue(x float32) float32 {
	v := x/2 + 0.5
	if v < 0 || v != v {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// ToUint8 is round(UnitValue(x)*255), with the product in float32 and
// rounding half to even, as numpy's (image*255).round().astype(uint8).
func ToUint8(x float32) uint8 {
	return uint8(math.RoundToEven(float64(UnitValue(x) * 255)))
}

// Gray returns the ITU-R BT.601 luma of img, Y = 0.299 R + 0.587 G + 0.114 B,
// rounded to 8 bits.
func Gray(img image.Image) *image.Gray {
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			l := 0.299*float64(c.R) + 0.587*float64(c.G) + 0.114*float64(c.B)
			g.Pix[y*g.Stride+x] = uint8(math.Min(255, math.Round(l)))
		}
	}
	return g
}
