package dataset

import (
	"strings"
	"testing"
)

// FuzzDICOM feeds arbitrary bytes to the DICOM reader (and the format
// sniffer around it): it must return an image or an error, never panic,
// hang or allocate beyond what the input's size allows.
func FuzzDICOM(f *testing.F) {
	specs := []dicomSpec{
		{rows: 2, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{0, 50, 100, 200}},
		{ts: tsImplicitLE, rows: 2, cols: 2, photometric: "MONOCHROME1", bitsAllocated: 16, bitsStored: 12, pixels: []int{1, 2, 3, 4}},
		{rows: 1, cols: 4, photometric: "MONOCHROME2", bitsAllocated: 16, signed: true, slope: "2", intercept: "-1024", center: "0\\10", width: "2001", pixels: []int{1, 2, 3, 4}},
		{ts: tsDeflateLE, withSequence: true, rows: 1, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{10, 20}},
		{ts: tsImplicitLE, withSequence: true, rows: 1, cols: 2, photometric: "MONOCHROME2", bitsAllocated: 8, voiFunction: "SIGMOID", center: "1", width: "3", pixels: []int{10, 20}},
		{rows: 1, cols: 2, samples: 3, photometric: "RGB", bitsAllocated: 8, pixels: []int{1, 2, 3, 4, 5, 6}},
		{ts: "1.2.840.10008.1.2.4.90", rows: 1, cols: 1, photometric: "MONOCHROME2", bitsAllocated: 8, pixels: []int{1}},
	}
	for _, s := range specs {
		b := buildDICOM(s)
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[128:]) // no preamble
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := decodeImage(b, 1<<22)
		if err != nil {
			return
		}
		n := int64(img.w) * int64(img.h) * int64(len(img.pix))
		if n <= 0 || n > int64(len(b))*64+1<<20 {
			t.Fatalf("decoded %dx%dx%d from %d bytes", img.w, img.h, len(img.pix), len(b))
		}
		for _, p := range img.pix {
			for _, v := range p {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("value %v out of [0,1]", v)
				}
			}
		}
	})
}

// FuzzReport checks the report parser and caption helpers on arbitrary
// text: no panics, cleaned text has no placeholders, doubled spaces or
// surrounding space, and swapping sides twice gives the caption back (up to
// letter case) whenever both swaps are accepted.
func FuzzReport(f *testing.F) {
	for _, s := range []string{
		mimicReport,
		"IMPRESSION: 1. Left effusion. 2. Right PICC.",
		"FINDINGS:\n r lower lobe ___ opacity\nIMPRESSION(S):\n",
		"Impression: levoscoliosis, L>R",
		"WET READ: ___ 10:00 AM\nCONCLUSION: was left in place",
		"\r\n::: 1) ,,, ___ .\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = Sections(s)
		imp := Impression(s)
		for _, out := range []string{imp, CleanReportText(s)} {
			if strings.Contains(out, "__") || strings.Contains(out, "  ") || strings.TrimSpace(out) != out {
				t.Fatalf("cleaned %q to %q", s, out)
			}
		}
		c := CleanCaption(s, false)
		if sw, ok := SwapLaterality(c); ok {
			if back, ok2 := SwapLaterality(sw); ok2 && !strings.EqualFold(back, c) {
				t.Fatalf("swap twice: %q -> %q -> %q", c, sw, back)
			}
		} else if sw != c {
			t.Fatalf("refused swap changed the caption")
		}
	})
}
