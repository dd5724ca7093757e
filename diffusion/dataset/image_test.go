package dataset

import (
	"image"
	"image/color"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/internal/testutil"
)

func TestPNG16RoundTrip(t *testing.T) {
	m := image.NewGray16(image.Rect(0, 0, 8, 8))
	vals := []uint16{0, 1, 255, 256, 4095, 32768, 65534, 65535}
	for i := range 64 {
		m.SetGray16(i%8, i/8, color.Gray16{vals[(i+i/8)%8]})
	}
	img, err := decodeImage(encodePNG(t, m), MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.pix) != 1 {
		t.Fatalf("16-bit gray decoded to %d channels", len(img.pix))
	}
	for i := range 64 {
		want := float32(vals[(i+i/8)%8]) / 65535
		if img.pix[0][i] != want {
			t.Fatalf("pixel %d = %v, want %v", i, img.pix[0][i], want)
		}
	}
	// At its own size preprocessing is exact: 2*v/65535 - 1 on all 3 channels.
	out, err := Decode(encodePNG(t, m), 8, false)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		for i := range 64 {
			want := float64(vals[(i+i/8)%8])/65535*2 - 1
			if d := math.Abs(float64(out[c*64+i]) - want); d > 1e-6 {
				t.Fatalf("channel %d pixel %d = %v, want %v", c, i, out[c*64+i], want)
			}
		}
	}
}

func TestImageFormats(t *testing.T) {
	g := gradient(16, 16, 3)
	rgb := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	rgb16 := image.NewNRGBA64(image.Rect(0, 0, 16, 16))
	pal := image.NewPaletted(image.Rect(0, 0, 16, 16), color.Palette{color.Gray{0}, color.RGBA{255, 0, 0, 255}})
	for y := range 16 {
		for x := range 16 {
			rgb.SetNRGBA(x, y, color.NRGBA{uint8(x * 16), uint8(y * 16), 7, 255})
			rgb16.SetNRGBA64(x, y, color.NRGBA64{uint16(x * 4096), 0, 65535, 65535})
			pal.SetColorIndex(x, y, uint8((x+y)%2))
		}
	}
	cases := []struct {
		name  string
		data  []byte
		chans int
		check func(img *floatImage) bool
	}{
		{"png gray8", encodePNG(t, g), 1, func(m *floatImage) bool { return m.pix[0][17] == float32(g.Pix[17])/255 }},
		{"png rgb8", encodePNG(t, rgb), 3, func(m *floatImage) bool {
			return m.pix[0][16*2+3] == 48.0/255 && m.pix[1][16*2+3] == 32.0/255 && m.pix[2][5] == 7.0/255
		}},
		{"png rgb16", encodePNG(t, rgb16), 3, func(m *floatImage) bool { return m.pix[0][3] == 3*4096.0/65535 && m.pix[2][0] == 1 }},
		{"png paletted", encodePNG(t, pal), 3, func(m *floatImage) bool { return m.pix[0][1] == 1 && m.pix[1][1] == 0 && m.pix[0][0] == 0 }},
		{"jpeg gray", encodeJPEG(t, g), 1, func(m *floatImage) bool { return math.Abs(float64(m.pix[0][17])-float64(g.Pix[17])/255) < 0.05 }},
		{"jpeg rgb", encodeJPEG(t, rgb), 3, func(m *floatImage) bool { return math.Abs(float64(m.pix[0][16*8+8])-128.0/255) < 0.05 }},
	}
	for _, c := range cases {
		img, err := decodeImage(c.data, MaxPixels)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(img.pix) != c.chans || img.w != 16 || img.h != 16 {
			t.Fatalf("%s: %dx%dx%d", c.name, img.w, img.h, len(img.pix))
		}
		if !c.check(img) {
			t.Errorf("%s: wrong pixel values", c.name)
		}
	}
	for name, b := range map[string][]byte{
		"garbage":       []byte("GIF89a not supported"),
		"truncated png": encodePNG(t, g)[:60],
		"truncated jpg": encodeJPEG(t, g)[:100],
	} {
		if _, err := decodeImage(b, MaxPixels); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := decodeImage(encodePNG(t, g), 100); err == nil || !strings.Contains(err.Error(), "at most 100 pixels") {
		t.Errorf("pixel limit: got %v", err)
	}
}

func TestResolutionChecked(t *testing.T) {
	for _, r := range []int{0, -8, 12, 511, 8200} {
		if _, err := Decode(encodePNG(t, gradient(8, 8, 0)), r, false); err == nil || !strings.Contains(err.Error(), "multiple of 8") {
			t.Errorf("resolution %d: got %v", r, err)
		}
		if _, err := Open(t.TempDir(), Options{Resolution: r}); err == nil || !strings.Contains(err.Error(), "multiple of 8") {
			t.Errorf("Open resolution %d: got %v", r, err)
		}
	}
}

func TestResizeHandComputed(t *testing.T) {
	// A 4x4 gray image, every row [0 1 2 3]/3, to 2x2 (columns are constant,
	// so only the horizontal weights matter). PIL's bilinear at scale 2 has support 2: output 0 reads
	// inputs 0..2 with weights .75,.75,.25 (/1.75), output 1 inputs 1..3 with
	// .25,.75,.75 (/1.75).
	src := newFloatImage(4, 4, 1)
	for y := range 4 {
		for x := range 4 {
			src.pix[0][y*4+x] = float32(x) / 3
		}
	}
	// Resolution 2 is not a training resolution but preprocess takes any size.
	out := make([]float32, 3*2*2)
	preprocess(src, 2, false, out)
	want := []float64{1.25 / 1.75 / 3, 4 / 1.75 / 3}
	for c := range 3 {
		for y := range 2 {
			for x := range 2 {
				w := want[x]*2 - 1
				if d := math.Abs(float64(out[c*4+y*2+x]) - w); d > 1e-6 {
					t.Errorf("c%d y%d x%d = %v, want %v", c, y, x, out[c*4+y*2+x], w)
				}
			}
		}
	}
	// Flip mirrors the row.
	preprocess(src, 2, true, out)
	if math.Abs(float64(out[0])-(want[1]*2-1)) > 1e-6 || math.Abs(float64(out[1])-(want[0]*2-1)) > 1e-6 {
		t.Errorf("flipped row %v", out[:2])
	}
}

func TestResizeCropGeometry(t *testing.T) {
	// 16x8 at resolution 8: shorter side already 8, width stays 16, crop
	// columns 4..11.
	src := newFloatImage(16, 8, 1)
	for i := range src.pix[0] {
		src.pix[0][i] = float32(i%16) / 15
	}
	out := make([]float32, 3*64)
	preprocess(src, 8, false, out)
	for x := range 8 {
		if w := float32(x+4)/15*2 - 1; math.Abs(float64(out[x]-w)) > 1e-6 {
			t.Fatalf("column %d = %v, want %v", x, out[x], w)
		}
	}
	// 9x8: offset round-half-even(0.5) = 0.
	src = newFloatImage(9, 8, 1)
	for i := range src.pix[0] {
		src.pix[0][i] = float32(i%9) / 8
	}
	preprocess(src, 8, false, out)
	if out[0] != -1 {
		t.Fatalf("9x8 crop starts at %v, want column 0 (-1)", out[0])
	}
	// Sizes as torchvision: shorter side to res, longer truncated.
	for _, c := range [][4]int{{1024, 768, 682, 512}, {768, 1024, 512, 682}, {100, 100, 512, 512}, {3000, 2000, 768, 512}, {2000, 3001, 512, 768}} {
		if w, h := resizedSize(c[0], c[1], 512); w != c[2] || h != c[3] {
			t.Errorf("resized %dx%d -> %dx%d, want %dx%d", c[0], c[1], w, h, c[2], c[3])
		}
	}
	// A constant image stays constant through downscaling and upscaling.
	for _, sz := range [][2]int{{37, 23}, {5, 3}, {1000, 10}} {
		src = newFloatImage(sz[0], sz[1], 1)
		for i := range src.pix[0] {
			src.pix[0][i] = 0.25
		}
		out := make([]float32, 3*16*16)
		preprocess(src, 16, false, out)
		for i, v := range out {
			if math.Abs(float64(v)+0.5) > 1e-5 {
				t.Fatalf("%v: value %d = %v, want -0.5", sz, i, v)
			}
		}
	}
}

// TestGoldenPreprocess checks Decode against the pixel_values that
// diffusers' train_text_to_image transforms produced (64 px images at
// resolution 64, where resize and crop are the identity).
func TestGoldenPreprocess(t *testing.T) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/images")
	matches, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(matches) == 0 {
		t.Skip("no golden images")
	}
	for _, p := range matches {
		b := readFile(t, p)
		got, err := Decode(b, 64, false)
		if err != nil {
			t.Fatal(err)
		}
		a, err := npy.Read(strings.TrimSuffix(p, ".png") + ".npy")
		if err != nil {
			t.Fatal(err)
		}
		want, err := a.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != len(got) {
			t.Fatalf("%s: %d values, want %d", p, len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Fatalf("%s: value %d = %v, want %v", p, i, got[i], want[i])
			}
		}
	}
}

func TestGrayStoredAsColour(t *testing.T) {
	g := gradient(24, 16, 9)
	rgb := image.NewNRGBA(image.Rect(0, 0, 24, 16))
	for y := range 16 {
		for x := range 24 {
			v := g.GrayAt(x, y).Y
			rgb.SetNRGBA(x, y, color.NRGBA{v, v, v, 255})
		}
	}
	want, err := Decode(encodePNG(t, g), 8, false)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"png": encodePNG(t, rgb), "jpeg": encodeJPEG(t, rgb)} {
		img, err := decodeImage(b, MaxPixels)
		if err != nil || len(img.pix) != 1 {
			t.Fatalf("%s: %v, %d planes, want 1", name, err, len(img.pix))
		}
	}
	got, _ := Decode(encodePNG(t, rgb), 8, false)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("value %d: %v from RGB, %v from gray", i, got[i], want[i])
		}
	}
}
