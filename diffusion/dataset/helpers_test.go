package dataset

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// writeFile writes data to dir/rel, creating folders.
func writeFile(t testing.TB, dir, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// grayImage returns a w x h 8-bit gray image with pixel f(x, y).
func grayImage(w, h int, f func(x, y int) uint8) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetGray(x, y, color.Gray{f(x, y)})
		}
	}
	return m
}

// gradient is a test pattern that differs between the left and right halves.
func gradient(w, h, seed int) *image.Gray {
	return grayImage(w, h, func(x, y int) uint8 { return uint8((x*7 + y*3 + seed*31) % 256) })
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A tiny DICOM writer for tests.

type dcmElem struct {
	group, elem uint16
	vr          string
	val         []byte
}

func dUS(g, e uint16, v int) dcmElem {
	b := make([]byte, 2)
	binary.LittleEndian.PutUint16(b, uint16(v))
	return dcmElem{g, e, "US", b}
}

func dStr(g, e uint16, vr, s string) dcmElem {
	b := []byte(s)
	if len(b)%2 == 1 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	return dcmElem{g, e, vr, b}
}

func dDS(g, e uint16, v float64) dcmElem {
	return dStr(g, e, "DS", strconv.FormatFloat(v, 'g', -1, 64))
}

// dicomSpec describes a test DICOM file.
type dicomSpec struct {
	ts            string // transfer syntax UID
	rows, cols    int
	samples       int
	photometric   string
	bitsAllocated int
	bitsStored    int // 0: same as allocated
	signed        bool
	slope         string // "" omitted
	intercept     string
	center, width string // raw DS strings, "" omitted
	voiFunction   string
	pixels        []int // stored values (raw bits, before masking)
	extra         []dcmElem
	withSequence  bool // add an undefined-length sequence before the image attributes
}

func (s dicomSpec) elements() []dcmElem {
	if s.samples == 0 {
		s.samples = 1
	}
	if s.bitsStored == 0 {
		s.bitsStored = s.bitsAllocated
	}
	es := []dcmElem{
		dStr(0x0008, 0x0060, "CS", "DX"),
	}
	es = append(es, s.extra...)
	es = append(es,
		dUS(0x0028, 0x0002, s.samples),
		dStr(0x0028, 0x0004, "CS", s.photometric),
		dUS(0x0028, 0x0010, s.rows),
		dUS(0x0028, 0x0011, s.cols),
		dUS(0x0028, 0x0100, s.bitsAllocated),
		dUS(0x0028, 0x0101, s.bitsStored),
		dUS(0x0028, 0x0102, s.bitsStored-1),
	)
	pr := 0
	if s.signed {
		pr = 1
	}
	es = append(es, dUS(0x0028, 0x0103, pr))
	if s.center != "" {
		es = append(es, dStr(0x0028, 0x1050, "DS", s.center))
	}
	if s.width != "" {
		es = append(es, dStr(0x0028, 0x1051, "DS", s.width))
	}
	if s.intercept != "" {
		es = append(es, dStr(0x0028, 0x1052, "DS", s.intercept))
	}
	if s.slope != "" {
		es = append(es, dStr(0x0028, 0x1053, "DS", s.slope))
	}
	if s.voiFunction != "" {
		es = append(es, dStr(0x0028, 0x1056, "CS", s.voiFunction))
	}
	var pix []byte
	vr := "OB"
	if s.bitsAllocated == 16 {
		vr = "OW"
		for _, v := range s.pixels {
			pix = binary.LittleEndian.AppendUint16(pix, uint16(v))
		}
	} else {
		for _, v := range s.pixels {
			pix = append(pix, byte(v))
		}
	}
	if len(pix)%2 == 1 {
		pix = append(pix, 0)
	}
	es = append(es, dcmElem{0x7FE0, 0x0010, vr, pix})
	return es
}

// encodeElem appends one element in explicit or implicit VR little endian.
func encodeElem(b []byte, e dcmElem, explicit bool) []byte {
	b = binary.LittleEndian.AppendUint16(b, e.group)
	b = binary.LittleEndian.AppendUint16(b, e.elem)
	if explicit {
		b = append(b, e.vr...)
		if longVR(e.vr) {
			b = append(b, 0, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(e.val)))
		} else {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(e.val)))
		}
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.val)))
	}
	return append(b, e.val...)
}

// undefinedSequence appends (0008,1140) as a sequence of undefined length
// holding one undefined-length item with a nested Rows element (which the
// reader must not take for the image's).
func undefinedSequence(b []byte, explicit bool) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0008)
	b = binary.LittleEndian.AppendUint16(b, 0x1140)
	if explicit {
		b = append(b, "SQ"...)
		b = append(b, 0, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, undefinedLength)
	// Item, undefined length.
	b = binary.LittleEndian.AppendUint16(b, 0xFFFE)
	b = binary.LittleEndian.AppendUint16(b, 0xE000)
	b = binary.LittleEndian.AppendUint32(b, undefinedLength)
	b = encodeElem(b, dUS(0x0028, 0x0010, 7777), explicit)
	b = encodeElem(b, dStr(0x0008, 0x1150, "UI", "1.2.3"), explicit)
	b = binary.LittleEndian.AppendUint16(b, 0xFFFE)
	b = binary.LittleEndian.AppendUint16(b, 0xE00D)
	b = binary.LittleEndian.AppendUint32(b, 0)
	// Item, defined length (empty).
	b = binary.LittleEndian.AppendUint16(b, 0xFFFE)
	b = binary.LittleEndian.AppendUint16(b, 0xE000)
	b = binary.LittleEndian.AppendUint32(b, 0)
	// Sequence delimiter.
	b = binary.LittleEndian.AppendUint16(b, 0xFFFE)
	b = binary.LittleEndian.AppendUint16(b, 0xE0DD)
	return binary.LittleEndian.AppendUint32(b, 0)
}

// buildDICOM writes a Part 10 file: preamble, meta group, data set.
func buildDICOM(s dicomSpec) []byte {
	ts := s.ts
	if ts == "" {
		ts = tsExplicitLE
	}
	var meta []byte
	meta = encodeElem(meta, dcmElem{0x0002, 0x0001, "OB", []byte{0, 1}}, true)
	meta = encodeElem(meta, dStr(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.1.1"), true)
	meta = encodeElem(meta, dStr(0x0002, 0x0010, "UI", ts), true)
	gl := make([]byte, 4)
	binary.LittleEndian.PutUint32(gl, uint32(len(meta)))
	out := make([]byte, 128, 1024)
	out = append(out, "DICM"...)
	out = encodeElem(out, dcmElem{0x0002, 0x0000, "UL", gl}, true)
	out = append(out, meta...)
	explicit := ts != tsImplicitLE
	var body []byte
	if s.withSequence {
		body = undefinedSequence(body, explicit)
	}
	for _, e := range s.elements() {
		body = encodeElem(body, e, explicit)
	}
	if ts == tsDeflateLE {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestCompression)
		w.Write(body)
		w.Close()
		body = z.Bytes()
	}
	return append(out, body...)
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
