package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
)

// floatImage is a decoded image: c planes (1 for grayscale, 3 for RGB) of
// w*h values in [0,1], row-major.
type floatImage struct {
	w, h int
	pix  [][]float32 // [c][h*w]
}

func newFloatImage(w, h, c int) *floatImage {
	img := &floatImage{w: w, h: h, pix: make([][]float32, c)}
	for i := range img.pix {
		img.pix[i] = make([]float32, w*h)
	}
	return img
}

// ImageFormat is an image file format the reader decodes.
type ImageFormat int

// Image formats, detected from the file's first bytes (not its name).
const (
	FormatUnknown ImageFormat = iota
	FormatPNG
	FormatJPEG
	FormatDICOM
)

// String returns the format's name.
func (f ImageFormat) String() string {
	switch f {
	case FormatPNG:
		return "PNG"
	case FormatJPEG:
		return "JPEG"
	case FormatDICOM:
		return "DICOM"
	}
	return "unknown"
}

// sniffFormat detects the format from the file's first bytes.
func sniffFormat(b []byte) ImageFormat {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return FormatJPEG
	case isDICOM(b):
		return FormatDICOM
	}
	return FormatUnknown
}

// imageExts are the file name extensions the folder layout takes as images.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".dcm": true, ".dicom": true}

// isImageName reports whether name has an image extension.
func isImageName(name string) bool {
	i := strings.LastIndexByte(name, '.')
	return i >= 0 && imageExts[strings.ToLower(name[i:])]
}

// decodeImage decodes a PNG, JPEG or uncompressed DICOM file held in b.
// maxPixels bounds width x height (read from the header before decoding).
func decodeImage(b []byte, maxPixels int64) (*floatImage, error) {
	format := sniffFormat(b)
	switch format {
	case FormatPNG, FormatJPEG:
		cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s header: %v", format, err)
		}
		if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
			return nil, fmt.Errorf("%s image is %dx%d, expected at most %d pixels", format, cfg.Width, cfg.Height, maxPixels)
		}
		var m image.Image
		if format == FormatPNG {
			m, err = png.Decode(bytes.NewReader(b))
		} else {
			m, err = jpeg.Decode(bytes.NewReader(b))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", format, err)
		}
		return fromImage(m), nil
	case FormatDICOM:
		return decodeDICOM(b)
	}
	if len(b) >= 8 && b[0] == 0x08 && b[1] == 0x00 {
		// A DICOM data set without the Part 10 preamble.
		return decodeDICOM(b)
	}
	return nil, errors.New("unknown image format, expected PNG, JPEG or DICOM")
}

// fromImage converts a decoded Go image to float planes in [0,1]: gray
// images give one plane (8-bit /255, 16-bit /65535), colour images three
// (alpha is dropped without compositing, as PIL's convert("RGB") does).
func fromImage(m image.Image) *floatImage {
	r := m.Bounds()
	w, h := r.Dx(), r.Dy()
	switch m := m.(type) {
	case *image.Gray:
		out := newFloatImage(w, h, 1)
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			dst := out.pix[0][y*w : (y+1)*w]
			for x, v := range row {
				dst[x] = lut8[v]
			}
		}
		return out
	case *image.Gray16:
		out := newFloatImage(w, h, 1)
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			dst := out.pix[0][y*w : (y+1)*w]
			for x := range dst {
				dst[x] = float32(uint16(row[2*x])<<8|uint16(row[2*x+1])) / 65535
			}
		}
		return out
	case *image.YCbCr:
		if neutralChroma(m) {
			// A gray picture stored as colour: R = G = B = Y exactly.
			out := newFloatImage(w, h, 1)
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					out.pix[0][y*w+x] = lut8[m.Y[m.YOffset(r.Min.X+x, r.Min.Y+y)]]
				}
			}
			return out
		}
		out := newFloatImage(w, h, 3)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := m.YOffset(r.Min.X+x, r.Min.Y+y)
				ci := m.COffset(r.Min.X+x, r.Min.Y+y)
				rr, gg, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				p := y*w + x
				out.pix[0][p], out.pix[1][p], out.pix[2][p] = lut8[rr], lut8[gg], lut8[bb]
			}
		}
		return collapseGray(out)
	case *image.NRGBA:
		out := newFloatImage(w, h, 3)
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				p := y*w + x
				out.pix[0][p], out.pix[1][p], out.pix[2][p] = lut8[row[4*x]], lut8[row[4*x+1]], lut8[row[4*x+2]]
			}
		}
		return collapseGray(out)
	case *image.RGBA:
		if opaque(m) {
			out := newFloatImage(w, h, 3)
			for y := 0; y < h; y++ {
				row := m.Pix[y*m.Stride : y*m.Stride+4*w]
				for x := 0; x < w; x++ {
					p := y*w + x
					out.pix[0][p], out.pix[1][p], out.pix[2][p] = lut8[row[4*x]], lut8[row[4*x+1]], lut8[row[4*x+2]]
				}
			}
			return collapseGray(out)
		}
	}
	// Everything else (16-bit colour, paletted, CMYK, premultiplied alpha):
	// through the non-premultiplied 16-bit colour model.
	gray := isGrayModel(m.ColorModel())
	c := 3
	if gray {
		c = 1
	}
	out := newFloatImage(w, h, c)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			col := color.NRGBA64Model.Convert(m.At(r.Min.X+x, r.Min.Y+y)).(color.NRGBA64)
			p := y*w + x
			out.pix[0][p] = float32(col.R) / 65535
			if !gray {
				out.pix[1][p] = float32(col.G) / 65535
				out.pix[2][p] = float32(col.B) / 65535
			}
		}
	}
	return collapseGray(out)
}

// collapseGray returns a colour image whose three planes are equal as one
// plane (radiographs are often saved as RGB): preprocessing then resizes
// one plane instead of three, with the same result.
func collapseGray(m *floatImage) *floatImage {
	if len(m.pix) != 3 {
		return m
	}
	r, g, b := m.pix[0], m.pix[1], m.pix[2]
	for i := range r {
		if r[i] != g[i] || r[i] != b[i] {
			return m
		}
	}
	m.pix = m.pix[:1]
	return m
}

// neutralChroma reports whether every chroma sample of m is 128.
func neutralChroma(m *image.YCbCr) bool {
	for _, p := range [][]byte{m.Cb, m.Cr} {
		for _, v := range p {
			if v != 128 {
				return false
			}
		}
	}
	return true
}

func isGrayModel(m color.Model) bool { return m == color.GrayModel || m == color.Gray16Model }

func opaque(m *image.RGBA) bool {
	for i := 3; i < len(m.Pix); i += 4 {
		if m.Pix[i] != 0xFF {
			return false
		}
	}
	return true
}

// lut8 maps an 8-bit value to [0,1].
var lut8 = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return
}()
