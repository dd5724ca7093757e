package dataset

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDICOMVariants(t *testing.T) {
	// want: display values in [0,1] computed by hand from the DICOM rules.
	cases := []struct {
		name string
		spec dicomSpec
		want []float64
	}{
		{
			name: "explicit MONOCHROME2 8-bit min-max",
			spec: dicomSpec{rows: 2, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{0, 50, 100, 200}},
			want: []float64{0, 0.25, 0.5, 1},
		},
		{
			name: "implicit MONOCHROME1 16-bit 12 stored, garbage high bits masked, inverted",
			spec: dicomSpec{ts: tsImplicitLE, rows: 2, cols: 2, photometric: "MONOCHROME1", bitsAllocated: 16, bitsStored: 12,
				pixels: []int{0xF000 | 0, 0xA000 | 1000, 2000, 4000}},
			want: []float64{1, 0.75, 0.5, 0},
		},
		{
			name: "signed 16-bit, rescale, LINEAR window",
			spec: dicomSpec{rows: 1, cols: 4, photometric: "MONOCHROME2", bitsAllocated: 16, signed: true,
				slope: "2", intercept: "-1024", center: "0", width: "2001",
				pixels: []int{0x10000 - 100, 0, 100, 600}},
			// HU -1224, -1024, -824, 176; window [-1000.5, 999.5]
			want: []float64{0, 0, (-824+0.5)/2000 + 0.5, (176+0.5)/2000 + 0.5},
		},
		{
			name: "multi-valued window: first values",
			spec: dicomSpec{ts: tsImplicitLE, rows: 2, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 16,
				intercept: "-1024", center: "40\\-600", width: "400\\1500",
				pixels: []int{1024 - 200, 1024 + 40, 1024 + 300, 1024}},
			want: []float64{0, (40-39.5)/399 + 0.5, 1, (0-39.5)/399 + 0.5},
		},
		{
			name: "12-bit signed stored in 16",
			spec: dicomSpec{rows: 2, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 16, bitsStored: 12, signed: true,
				pixels: []int{0x0FFF, 0x0800, 0x07FF, 0}},
			// -1, -2048, 2047, 0; min-max over [-2048, 2047]
			want: []float64{2047.0 / 4095, 0, 1, 2048.0 / 4095},
		},
		{
			name: "LINEAR_EXACT",
			spec: dicomSpec{rows: 1, cols: 3, photometric: "MONOCHROME2", bitsAllocated: 8, center: "100", width: "100", voiFunction: "LINEAR_EXACT",
				pixels: []int{40, 75, 160}},
			want: []float64{0, 0.25, 1},
		},
		{
			name: "SIGMOID",
			spec: dicomSpec{rows: 1, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 8, center: "100", width: "50", voiFunction: "SIGMOID",
				pixels: []int{100, 125}},
			want: []float64{0.5, 1 / (1 + math.Exp(-2))},
		},
		{
			name: "constant image without window",
			spec: dicomSpec{rows: 1, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{7, 7}},
			want: []float64{0, 0},
		},
		{
			name: "deflated explicit, nested undefined-length sequence",
			spec: dicomSpec{ts: tsDeflateLE, withSequence: true, rows: 1, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{10, 20}},
			want: []float64{0, 1},
		},
		{
			name: "implicit with sequence",
			spec: dicomSpec{ts: tsImplicitLE, withSequence: true, rows: 1, cols: 2, photometric: "MONOCHROME1", bitsAllocated: 8, pixels: []int{10, 20}},
			want: []float64{1, 0},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := decodeDICOM(buildDICOM(c.spec))
			if err != nil {
				t.Fatal(err)
			}
			if img.w != c.spec.cols || img.h != c.spec.rows || len(img.pix) != 1 {
				t.Fatalf("got %dx%dx%d, want %dx%dx1", img.w, img.h, len(img.pix), c.spec.cols, c.spec.rows)
			}
			for i, w := range c.want {
				if got := float64(img.pix[0][i]); math.Abs(got-w) > 1e-6 {
					t.Errorf("pixel %d = %.7f, want %.7f", i, got, w)
				}
			}
		})
	}
}

func TestDICOMRGB(t *testing.T) {
	spec := dicomSpec{rows: 1, cols: 2, samples: 3, photometric: "RGB", bitsAllocated: 8,
		pixels: []int{255, 0, 51, 0, 102, 255}}
	img, err := decodeDICOM(buildDICOM(spec))
	if err != nil {
		t.Fatal(err)
	}
	want := [3][2]float32{{1, 0}, {0, 0.4}, {0.2, 1}}
	for c := 0; c < 3; c++ {
		for i := 0; i < 2; i++ {
			if d := img.pix[c][i] - want[c][i]; d > 1e-6 || d < -1e-6 {
				t.Errorf("channel %d pixel %d = %v, want %v", c, i, img.pix[c][i], want[c][i])
			}
		}
	}
}

func TestDICOMCompressedRefused(t *testing.T) {
	for uid, name := range map[string]string{
		"1.2.840.10008.1.2.4.90": "JPEG 2000",
		"1.2.840.10008.1.2.4.50": "JPEG Baseline",
		"1.2.840.10008.1.2.5":    "RLE Lossless",
		"1.2.840.10008.1.2.2":    "Big Endian",
		"1.2.3.4.5":              "unknown transfer syntax",
	} {
		b := buildDICOM(dicomSpec{ts: uid, rows: 1, cols: 1, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{1}})
		_, err := decodeDICOM(b)
		var tse *TransferSyntaxError
		if !errors.As(err, &tse) || tse.UID != uid {
			t.Fatalf("%s: got %v, want a TransferSyntaxError", uid, err)
		}
		if !strings.Contains(err.Error(), uid) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the UID and %q", uid, err, name)
		}
	}
}

func TestDICOMBadInput(t *testing.T) {
	good := buildDICOM(dicomSpec{rows: 2, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 16, pixels: []int{1, 2, 3, 4}})
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"truncated pixel data": {good[:len(good)-3], "remain"},
		"no pixel data":        {buildDICOMNoPixels(), "no Pixel Data"},
		"bits allocated 12":    {buildDICOM(dicomSpec{rows: 1, cols: 1, photometric: "MONOCHROME2", bitsAllocated: 12, bitsStored: 12, pixels: []int{1}}), "Bits Allocated"},
		"palette":              {buildDICOM(dicomSpec{rows: 1, cols: 1, photometric: "PALETTE COLOR", bitsAllocated: 8, pixels: []int{1}}), "PALETTE COLOR"},
		"too few pixels":       {buildDICOM(dicomSpec{rows: 4, cols: 4, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{1, 2}}), "expected 16"},
		"bad window":           {buildDICOM(dicomSpec{rows: 1, cols: 1, photometric: "MONOCHROME2", bitsAllocated: 8, center: "abc", width: "4", pixels: []int{1}}), "decimal"},
		"not dicom":            {[]byte("hello world, this is not an image at all"), "not a DICOM"},
		"short":                {good[:140], "remain"},
	}
	for name, c := range cases {
		_, err := decodeDICOM(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
	// A length field far beyond the file must be refused, not allocated.
	huge := append([]byte(nil), good...)
	i := strings.Index(string(huge), "OW")
	huge[i+4], huge[i+5], huge[i+6], huge[i+7] = 0xF0, 0xFF, 0xFF, 0x7F
	if _, err := decodeDICOM(huge); err == nil || !strings.Contains(err.Error(), "remain") {
		t.Errorf("huge length: got %v", err)
	}
}

func buildDICOMNoPixels() []byte {
	b := buildDICOM(dicomSpec{rows: 1, cols: 1, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{1, 2}})
	return b[:len(b)-14] // drop the (7FE0,0010) OB element: 12-byte header + 2 bytes
}

func TestDICOMThroughDecode(t *testing.T) {
	// The same pixels as PNG and as DICOM preprocess identically.
	g := gradient(16, 8, 1)
	px := make([]int, 0, 128)
	for _, v := range g.Pix {
		px = append(px, int(v))
	}
	dcm := buildDICOM(dicomSpec{rows: 8, cols: 16, photometric: "MONOCHROME2", bitsAllocated: 8, center: "128", width: "256", pixels: px})
	// LINEAR with c=128, w=256: (x-127.5)/255 + 0.5 = x/255, as the PNG.
	a, err := Decode(dcm, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(encodePNG(t, g), 8, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if d := a[i] - b[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("value %d: DICOM %v, PNG %v", i, a[i], b[i])
		}
	}
}
