package pipeline

import (
	"fmt"
	"image"
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// splitDecoded copies the decoded images x [N, 3, H, W] (an F32 host
// tensor) into one []float32 [3*H*W] per image.
func splitDecoded(x *tensor.Tensor) [][]float32 {
	s := x.Shape()
	if len(s) != 4 || s[1] != 3 {
		panic(fmt.Sprintf("pipeline: splitDecoded: shape %v, want [N, 3, H, W]", s))
	}
	data := x.Float32s()
	per := 3 * s[2] * s[3]
	out := make([][]float32, s[0])
	for i := range out {
		out[i] = append([]float32(nil), data[i*per:(i+1)*per]...)
	}
	return out
}

// Gray16 returns the 16-bit grayscale image of one decoded image (the VAE
// decoder's raw output [3, height, width], Result.Decoded) at the decoder's
// full precision: with R, G, B = UnitValue of each channel (clamp(x/2 +
// 0.5, 0, 1), as the 8-bit images use), the ITU-R BT.601 luma Y = 0.299 R +
// 0.587 G + 0.114 B in float64, stored as round(Y * 65535). EncodePNG writes
// it as a 16-bit grayscale PNG, package dicom as a 16-bit DICOM image.
func Gray16(decoded []float32, width, height int) *image.Gray16 {
	n := width * height
	if width < 1 || height < 1 || len(decoded) != 3*n {
		panic(fmt.Sprintf("pipeline: Gray16: %d values for %dx%d, want 3 x %d", len(decoded), width, height, n))
	}
	g := image.NewGray16(image.Rect(0, 0, width, height))
	for p := 0; p < n; p++ {
		r := float64(UnitValue(decoded[p]))
		gr := float64(UnitValue(decoded[n+p]))
		b := float64(UnitValue(decoded[2*n+p]))
		y := math.Round(math.Min(1, 0.299*r+0.587*gr+0.114*b) * 65535)
		v := uint16(y)
		g.Pix[2*p], g.Pix[2*p+1] = uint8(v>>8), uint8(v)
	}
	return g
}
