package classify

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/phantom"
)

// grayImage returns a w x h Gray image with pseudo-random values.
func grayImage(w, h int, seed uint64) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	r := newRNG(seed)
	for i := range g.Pix {
		g.Pix[i] = uint8(r.intn(256))
	}
	return g
}

func checkClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > tol {
			t.Fatalf("%s: pixel (%d, %d) = %.7f, want %.7f", what, i%InputSize, i/InputSize, got[i], want[i])
		}
	}
}

// TestPreprocessIntegerRatio: a 256x256 image becomes the means of its 2x2
// blocks.
func TestPreprocessIntegerRatio(t *testing.T) {
	g := grayImage(256, 256, 1)
	got, err := Preprocess(g)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, InputSize*InputSize)
	for y := 0; y < InputSize; y++ {
		for x := 0; x < InputSize; x++ {
			s := int(g.GrayAt(2*x, 2*y).Y) + int(g.GrayAt(2*x+1, 2*y).Y) + int(g.GrayAt(2*x, 2*y+1).Y) + int(g.GrayAt(2*x+1, 2*y+1).Y)
			want[y*InputSize+x] = float64(s) / (4 * 255)
		}
	}
	checkClose(t, "256x256", got, want, 1e-6)
}

// TestPreprocessThreeToTwo: a 3:2 ratio (192 -> 128) after a centre crop of
// a 300x192 image: output pixel 2k covers source pixels 3k (weight 2/3) and
// 3k+1 (1/3); pixel 2k+1 covers 3k+1 (1/3) and 3k+2 (2/3), in each
// direction.
func TestPreprocessThreeToTwo(t *testing.T) {
	g := grayImage(300, 192, 2)
	g.Rect = g.Rect.Add(image.Pt(-7, 11)) // a non-zero origin
	got, err := Preprocess(g)
	if err != nil {
		t.Fatal(err)
	}
	x0, y0 := g.Rect.Min.X+(300-192)/2, g.Rect.Min.Y
	taps := func(i int) (j [2]int, w [2]float64) {
		k := i / 2
		if i%2 == 0 {
			return [2]int{3 * k, 3*k + 1}, [2]float64{2.0 / 3, 1.0 / 3}
		}
		return [2]int{3*k + 1, 3*k + 2}, [2]float64{1.0 / 3, 2.0 / 3}
	}
	want := make([]float64, InputSize*InputSize)
	for y := 0; y < InputSize; y++ {
		jy, wy := taps(y)
		for x := 0; x < InputSize; x++ {
			jx, wx := taps(x)
			var s float64
			for a := 0; a < 2; a++ {
				for b := 0; b < 2; b++ {
					s += wy[a] * wx[b] * float64(g.GrayAt(x0+jx[b], y0+jy[a]).Y) / 255
				}
			}
			want[y*InputSize+x] = s
		}
	}
	checkClose(t, "300x192 (3:2)", got, want, 1e-6)
}

// TestPreprocessFormats: the same gray picture stored as Gray, Gray16,
// RGBA, NRGBA and YCbCr gives the same input, exactly.
func TestPreprocessFormats(t *testing.T) {
	g := grayImage(200, 170, 3)
	ref, err := Preprocess(g)
	if err != nil {
		t.Fatal(err)
	}
	r := g.Rect
	g16, rgba, nrgba := image.NewGray16(r), image.NewRGBA(r), image.NewNRGBA(r)
	ycc := image.NewYCbCr(r, image.YCbCrSubsampleRatio444)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			v := g.GrayAt(x, y).Y
			g16.SetGray16(x, y, color.Gray16{Y: uint16(v) * 257})
			rgba.SetRGBA(x, y, color.RGBA{v, v, v, 255})
			nrgba.SetNRGBA(x, y, color.NRGBA{v, v, v, 255})
			ycc.Y[ycc.YOffset(x, y)] = v
			ycc.Cb[ycc.COffset(x, y)] = 128
			ycc.Cr[ycc.COffset(x, y)] = 128
		}
	}
	for name, img := range map[string]image.Image{"Gray16": g16, "RGBA": rgba, "NRGBA": nrgba, "YCbCr": ycc} {
		got, err := Preprocess(img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range got {
			if got[i] != ref[i] {
				t.Fatalf("%s: pixel %d = %v, Gray gives %v", name, i, got[i], ref[i])
			}
		}
	}
}

// TestPreprocessLuminance: a colour pixel counts by luminance; a small
// image is interpolated by area (a constant stays constant); values stay
// in [0, 1].
func TestPreprocessLuminance(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = 255, 0, 0, 255
	}
	got, err := Preprocess(img)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if math.Abs(float64(v)-0.299) > 1e-6 {
			t.Fatalf("pure red 16x16: pixel %d = %v, want 0.299", i, v)
		}
	}
	// Upsampling a 16x16 checkerboard of columns: output column x covers
	// source [x/8, (x+1)/8), one source column, so it copies it.
	g := image.NewGray(image.Rect(0, 0, 16, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			g.Pix[y*16+x] = uint8(255 * (x % 2))
		}
	}
	got, err = Preprocess(g)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if want := float32((i % InputSize / 8) % 2); v != want {
			t.Fatalf("16x16 columns: pixel (%d, %d) = %v, want %v", i%InputSize, i/InputSize, v, want)
		}
	}
}

func TestPreprocessErrors(t *testing.T) {
	var nilGray *image.Gray
	for _, c := range []struct {
		name string
		img  image.Image
		want string
	}{
		{"nil", nil, "nil"},
		{"typed nil", nilGray, "nil"},
		{"too narrow", image.NewGray(image.Rect(0, 0, 15, 100)), "15x100"},
		{"empty", image.NewRGBA(image.Rect(0, 0, 0, 0)), "at least 16x16"},
	} {
		_, err := Preprocess(c.img)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if _, err := FromPhantom(nil); err == nil {
		t.Error("FromPhantom(nil): no error")
	}
	if _, err := FromPhantom(&phantom.Image{W: 20, H: 20, Pix: make([]float32, 10)}); err == nil {
		t.Error("FromPhantom with 10 values for 20x20: no error")
	}
}

func TestFromPhantom(t *testing.T) {
	im, err := phantom.Render(phantom.Normal(3), 160, 200)
	if err != nil {
		t.Fatal(err)
	}
	a, err := FromPhantom(im)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Preprocess(im.Gray())
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("pixel %d: FromPhantom %v, Preprocess(Gray()) %v", i, a[i], b[i])
		}
	}
}
