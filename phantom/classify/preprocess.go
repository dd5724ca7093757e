package classify

import (
	"errors"
	"fmt"
	"image"

	"github.com/roentgo/roentgo/phantom"
)

// InputSize is the side of the network's square input, in pixels.
const InputSize = 128

// MinImageSize is the smallest width and height Preprocess accepts.
const MinImageSize = 16

// Preprocess returns the network input of img: InputSize*InputSize values in
// [0, 1], row-major from the top row. It
//
//  1. converts to gray: *image.Gray and *image.Gray16 as stored (Y/255,
//     Y/65535); any other image by luminance 0.299 R + 0.587 G + 0.114 B of
//     its 16-bit RGBA (premultiplied: a translucent pixel is composited
//     over black), exactly R when R = G = B, so a gray image stored as RGB
//     gives the same input as stored as Gray;
//  2. crops the centred square of side min(width, height) (the left/top
//     offset rounds down);
//  3. resizes it to InputSize x InputSize by area averaging: each output
//     pixel is the mean of the source area it covers, source pixels cut by
//     its border counting with the exact fraction inside (a box filter;
//     for a square smaller than InputSize it interpolates the same way).
//
// img must be at least MinImageSize pixels in each direction.
func Preprocess(img image.Image) ([]float32, error) {
	if isNil(img) {
		return nil, errors.New("classify: Preprocess: the image is nil, expected an image.Image")
	}
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	if w < MinImageSize || h < MinImageSize {
		return nil, fmt.Errorf("classify: Preprocess: the image is %dx%d, expected at least %dx%d pixels", w, h, MinImageSize, MinImageSize)
	}
	s := min(w, h)
	x0, y0 := r.Min.X+(w-s)/2, r.Min.Y+(h-s)/2
	gray := make([]float64, s*s)
	grayInto(gray, img, x0, y0, s)
	return resizeArea(gray, s, InputSize), nil
}

// FromPhantom returns the network input of a rendered phantom: Preprocess
// of im.Gray(), the 8-bit image a phantom dataset stores as PNG, so that
// rendered and generated (8-bit) images take the same path.
func FromPhantom(im *phantom.Image) ([]float32, error) {
	if im == nil {
		return nil, errors.New("classify: FromPhantom: the image is nil, expected a rendered *phantom.Image")
	}
	if im.W < 1 || im.H < 1 || len(im.Pix) != im.W*im.H {
		return nil, fmt.Errorf("classify: FromPhantom: the image is %dx%d with %d values, expected W*H values", im.W, im.H, len(im.Pix))
	}
	return Preprocess(im.Gray())
}

// isNil reports whether img is nil or a nil pointer of a standard image type.
func isNil(img image.Image) bool {
	switch m := img.(type) {
	case nil:
		return true
	case *image.Gray:
		return m == nil
	case *image.Gray16:
		return m == nil
	case *image.RGBA:
		return m == nil
	case *image.RGBA64:
		return m == nil
	case *image.NRGBA:
		return m == nil
	case *image.NRGBA64:
		return m == nil
	case *image.YCbCr:
		return m == nil
	case *image.Paletted:
		return m == nil
	}
	return false
}

// grayInto writes the gray values in [0, 1] of the s x s square of img at
// (x0, y0) into dst (row-major).
func grayInto(dst []float64, img image.Image, x0, y0, s int) {
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < s; y++ {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for x := 0; x < s; x++ {
				dst[y*s+x] = float64(row[x]) / 255
			}
		}
	case *image.Gray16:
		for y := 0; y < s; y++ {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for x := 0; x < s; x++ {
				dst[y*s+x] = float64(uint16(row[2*x])<<8|uint16(row[2*x+1])) / 65535
			}
		}
	case *image.RGBA:
		for y := 0; y < s; y++ {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for x := 0; x < s; x++ {
				p := row[4*x:]
				dst[y*s+x] = luma(uint32(p[0])*0x101, uint32(p[1])*0x101, uint32(p[2])*0x101)
			}
		}
	default:
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				r, g, b, _ := img.At(x0+x, y0+y).RGBA()
				dst[y*s+x] = luma(r, g, b)
			}
		}
	}
}

// luma returns the luminance in [0, 1] of 16-bit r, g, b: r itself when
// they are equal.
func luma(r, g, b uint32) float64 {
	if r == g && g == b {
		return float64(r) / 65535
	}
	v := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 65535
	return min(max(v, 0), 1)
}

// areaWeights returns, for each of the n output cells of a resize from s
// source pixels, the first source pixel it overlaps and the weights of the
// source pixels from there (summing to 1): output cell i covers source
// [i*s/n, (i+1)*s/n), source pixel j covers [j, j+1), and the weight of j
// is the length of their overlap over s/n. Lengths are counted in integer
// units of 1/n pixel, so the weights are exact ratios.
func areaWeights(s, n int) (first []int, w [][]float64) {
	first = make([]int, n)
	w = make([][]float64, n)
	for i := range n {
		lo, hi := i*s, (i+1)*s // in units of 1/n source pixel
		j0, j1 := lo/n, (hi+n-1)/n
		first[i] = j0
		for j := j0; j < j1; j++ {
			ov := min(hi, (j+1)*n) - max(lo, j*n)
			w[i] = append(w[i], float64(ov)/float64(s))
		}
	}
	return first, w
}

// resizeArea resizes the s x s image src to n x n by area averaging
// (separably: rows, then columns).
func resizeArea(src []float64, s, n int) []float32 {
	first, w := areaWeights(s, n)
	tmp := make([]float64, s*n) // s rows of n
	for y := 0; y < s; y++ {
		row := src[y*s : (y+1)*s]
		for i := range n {
			var acc float64
			for k, wk := range w[i] {
				acc += wk * row[first[i]+k]
			}
			tmp[y*n+i] = acc
		}
	}
	out := make([]float32, n*n)
	for i := range n {
		for x := range n {
			var acc float64
			for k, wk := range w[i] {
				acc += wk * tmp[(first[i]+k)*n+x]
			}
			out[i*n+x] = float32(min(max(acc, 0), 1))
		}
	}
	return out
}
