package dataset

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// A small, strict DICOM reader for uncompressed pixel data.
//
// It parses a whole file held in memory, so every length field is checked
// against the bytes that remain and nothing is allocated beyond the file's
// size (the decoded image is at most 4 float32 per stored byte, and
// MaxPixels bounds it too). Nested sequences are skipped with a depth limit.
// Transfer syntaxes read: Implicit VR Little Endian (1.2.840.10008.1.2),
// Explicit VR Little Endian (1.2.840.10008.1.2.1) and Deflated Explicit VR
// Little Endian (1.2.840.10008.1.2.1.99, inflated with a size cap); every
// other one is refused with an error naming its UID and name.

// MaxPixels bounds the pixels (rows x columns x samples) of a decoded image:
// 2^28, i.e. a 16384 x 16384 grayscale image.
const MaxPixels = 1 << 28

// maxDicomDepth bounds the nesting of sequences the reader skips.
const maxDicomDepth = 32

const (
	tsImplicitLE = "1.2.840.10008.1.2"
	tsExplicitLE = "1.2.840.10008.1.2.1"
	tsDeflateLE  = "1.2.840.10008.1.2.1.99"
	tsExplicitBE = "1.2.840.10008.1.2.2"
)

// transferSyntaxNames names the transfer syntaxes the reader refuses, so the
// error says what the file is ("JPEG 2000 Image Compression").
var transferSyntaxNames = map[string]string{
	tsExplicitBE:              "Explicit VR Big Endian (retired)",
	"1.2.840.10008.1.2.1.98":  "Encapsulated Uncompressed Explicit VR Little Endian",
	"1.2.840.10008.1.2.4.50":  "JPEG Baseline (Process 1)",
	"1.2.840.10008.1.2.4.51":  "JPEG Extended (Process 2 & 4)",
	"1.2.840.10008.1.2.4.57":  "JPEG Lossless, Non-Hierarchical (Process 14)",
	"1.2.840.10008.1.2.4.70":  "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
	"1.2.840.10008.1.2.4.80":  "JPEG-LS Lossless Image Compression",
	"1.2.840.10008.1.2.4.81":  "JPEG-LS Lossy (Near-Lossless) Image Compression",
	"1.2.840.10008.1.2.4.90":  "JPEG 2000 Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.91":  "JPEG 2000 Image Compression",
	"1.2.840.10008.1.2.4.92":  "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.93":  "JPEG 2000 Part 2 Multi-component Image Compression",
	"1.2.840.10008.1.2.4.94":  "JPIP Referenced",
	"1.2.840.10008.1.2.4.95":  "JPIP Referenced Deflate",
	"1.2.840.10008.1.2.4.100": "MPEG2 Main Profile / Main Level",
	"1.2.840.10008.1.2.4.101": "MPEG2 Main Profile / High Level",
	"1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264 High Profile / Level 4.1",
	"1.2.840.10008.1.2.4.103": "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
	"1.2.840.10008.1.2.4.107": "HEVC/H.265 Main Profile / Level 5.1",
	"1.2.840.10008.1.2.4.108": "HEVC/H.265 Main 10 Profile / Level 5.1",
	"1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
	"1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
	"1.2.840.10008.1.2.4.112": "JPEG XL",
	"1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.202": "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)",
	"1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000 Image Compression",
	"1.2.840.10008.1.2.5":     "RLE Lossless",
}

// TransferSyntaxError is returned for a DICOM file whose transfer syntax
// the reader does not decode (compressed pixel data, big endian).
type TransferSyntaxError struct {
	UID  string // the Transfer Syntax UID (0002,0010)
	Name string // its name, "" when unknown
}

// Error names the transfer syntax and says how to convert the file.
func (e *TransferSyntaxError) Error() string {
	name := e.Name
	if name == "" {
		name = "unknown transfer syntax"
	}
	return fmt.Sprintf("DICOM transfer syntax %s (%s) is not supported: only uncompressed Implicit/Explicit VR Little Endian (and Deflated Explicit VR Little Endian) can be read; decompress the file first (e.g. dcmdjpeg, dcmdrle, gdcmconv --raw)", e.UID, name)
}

// dicomImage is the pixel data and the attributes that say how to display it.
type dicomImage struct {
	rows, cols      int
	samples         int    // SamplesPerPixel: 1 or 3
	photometric     string // MONOCHROME1, MONOCHROME2, RGB
	bitsAllocated   int
	bitsStored      int
	highBit         int
	signed          bool
	planar          int // PlanarConfiguration for RGB
	slope           float64
	intercept       float64
	hasWindow       bool
	center, width   float64
	voiFunction     string // LINEAR (default), LINEAR_EXACT, SIGMOID
	pixelData       []byte
	transferSyntax  string
	haveRows        bool
	haveCols        bool
	haveBits        bool
	haveSlope       bool
	haveIntercept   bool
	haveWidth       bool
	haveCenter      bool
	haveSamples     bool
	haveBitsStored  bool
	haveHighBit     bool
	havePhotometric bool
}

// dicomParser walks the data set in buf.
type dicomParser struct {
	buf      []byte
	pos      int
	explicit bool
	img      *dicomImage
}

type dicomTag uint32

func tag(group, elem uint16) dicomTag { return dicomTag(uint32(group)<<16 | uint32(elem)) }

func (t dicomTag) String() string { return fmt.Sprintf("(%04X,%04X)", uint16(t>>16), uint16(t)) }

var (
	tagTransferSyntax = tag(0x0002, 0x0010)
	tagSamples        = tag(0x0028, 0x0002)
	tagPhotometric    = tag(0x0028, 0x0004)
	tagPlanar         = tag(0x0028, 0x0006)
	tagRows           = tag(0x0028, 0x0010)
	tagCols           = tag(0x0028, 0x0011)
	tagBitsAllocated  = tag(0x0028, 0x0100)
	tagBitsStored     = tag(0x0028, 0x0101)
	tagHighBit        = tag(0x0028, 0x0102)
	tagPixelRepr      = tag(0x0028, 0x0103)
	tagWindowCenter   = tag(0x0028, 0x1050)
	tagWindowWidth    = tag(0x0028, 0x1051)
	tagIntercept      = tag(0x0028, 0x1052)
	tagSlope          = tag(0x0028, 0x1053)
	tagVOIFunction    = tag(0x0028, 0x1056)
	tagPixelData      = tag(0x7FE0, 0x0010)
	tagItem           = tag(0xFFFE, 0xE000)
	tagItemDelim      = tag(0xFFFE, 0xE00D)
	tagSeqDelim       = tag(0xFFFE, 0xE0DD)
)

const undefinedLength = 0xFFFFFFFF

// longVR reports whether an explicit VR has a 2-byte reserved field and a
// 4-byte length.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

func validVR(vr string) bool {
	return len(vr) == 2 && vr[0] >= 'A' && vr[0] <= 'Z' && vr[1] >= 'A' && vr[1] <= 'Z'
}

// isDICOM reports whether b starts like a DICOM Part 10 file.
func isDICOM(b []byte) bool {
	return len(b) >= 132 && string(b[128:132]) == "DICM"
}

// decodeDICOM reads an uncompressed DICOM file (held whole in b) into a
// grayscale or RGB float image in [0,1], applying rescale, VOI windowing
// (or min-max) and MONOCHROME1 inversion.
func decodeDICOM(b []byte) (*floatImage, error) {
	img, err := parseDICOM(b)
	if err != nil {
		return nil, err
	}
	return img.render()
}

// parseDICOM reads the attributes and the pixel data of the first frame.
func parseDICOM(b []byte) (*dicomImage, error) {
	img := &dicomImage{slope: 1, samples: 1, voiFunction: "LINEAR"}
	var body []byte
	if isDICOM(b) {
		// File meta information: always explicit VR little endian.
		p := &dicomParser{buf: b, pos: 132, explicit: true, img: img}
		for p.pos+4 <= len(b) && binary.LittleEndian.Uint16(b[p.pos:]) == 0x0002 {
			if err := p.element(0, true); err != nil {
				return nil, fmt.Errorf("DICOM file meta information: %w", err)
			}
		}
		body = b[p.pos:]
	} else {
		// No preamble: accept only a raw implicit VR little endian data set
		// that starts with a group 0008 element (old ACR-NEMA style files).
		if len(b) < 8 || binary.LittleEndian.Uint16(b) != 0x0008 {
			return nil, fmt.Errorf("not a DICOM file: no \"DICM\" marker at offset 128")
		}
		img.transferSyntax = tsImplicitLE
		body = b
	}
	ts := img.transferSyntax
	if ts == "" {
		return nil, fmt.Errorf("DICOM file meta information has no Transfer Syntax UID (0002,0010)")
	}
	explicit := true
	switch ts {
	case tsImplicitLE:
		explicit = false
	case tsExplicitLE:
	case tsDeflateLE:
		// The data set after the meta information is raw deflate; the
		// inflated size is capped so that a small file cannot expand
		// without bound.
		limit := int64(len(b))*64 + 1<<20
		if limit > 1<<31 {
			limit = 1 << 31
		}
		r := flate.NewReader(bytes.NewReader(body))
		inflated, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return nil, fmt.Errorf("DICOM deflated data set: %v", err)
		}
		if int64(len(inflated)) > limit {
			return nil, fmt.Errorf("DICOM deflated data set inflates beyond %d bytes", limit)
		}
		body = inflated
	default:
		return nil, &TransferSyntaxError{UID: ts, Name: transferSyntaxNames[ts]}
	}
	p := &dicomParser{buf: body, explicit: explicit, img: img}
	for p.pos < len(body) && img.pixelData == nil {
		if err := p.element(0, false); err != nil {
			return nil, err
		}
	}
	if img.pixelData == nil {
		return nil, fmt.Errorf("DICOM file has no Pixel Data (7FE0,0010)")
	}
	return img, nil
}

// element reads one data element at p.pos, recording the attributes the
// reader needs; meta says the element is part of the file meta group.
func (p *dicomParser) element(depth int, meta bool) error {
	if depth > maxDicomDepth {
		return fmt.Errorf("DICOM sequences nested deeper than %d levels", maxDicomDepth)
	}
	b := p.buf
	start := p.pos
	if len(b)-p.pos < 8 {
		return fmt.Errorf("DICOM element header at offset %d runs past the end of the data (%d bytes left)", start, len(b)-p.pos)
	}
	group := binary.LittleEndian.Uint16(b[p.pos:])
	elem := binary.LittleEndian.Uint16(b[p.pos+2:])
	t := tag(group, elem)
	p.pos += 4
	var vr string
	var length uint32
	if group == 0xFFFE {
		// Item and delimitation tags have no VR in either encoding.
		length = binary.LittleEndian.Uint32(b[p.pos:])
		p.pos += 4
	} else if p.explicit {
		vr = string(b[p.pos : p.pos+2])
		if !validVR(vr) {
			return fmt.Errorf("DICOM element %s at offset %d has an invalid VR %q", t, start, vr)
		}
		if longVR(vr) {
			if len(b)-p.pos < 8 {
				return fmt.Errorf("DICOM element %s at offset %d: header runs past the end of the data", t, start)
			}
			length = binary.LittleEndian.Uint32(b[p.pos+4:])
			p.pos += 8
		} else {
			length = uint32(binary.LittleEndian.Uint16(b[p.pos+2:]))
			p.pos += 4
		}
	} else {
		length = binary.LittleEndian.Uint32(b[p.pos:])
		p.pos += 4
	}

	if length == undefinedLength {
		if t == tagPixelData {
			return fmt.Errorf("DICOM Pixel Data (7FE0,0010) is encapsulated (undefined length) in the uncompressed transfer syntax %s", p.img.transferSyntax)
		}
		if vr != "" && vr != "SQ" && vr != "UN" {
			return fmt.Errorf("DICOM element %s at offset %d has undefined length with VR %s", t, start, vr)
		}
		return p.skipUndefinedSequence(depth + 1)
	}
	if int64(length) > int64(len(b)-p.pos) {
		return fmt.Errorf("DICOM element %s at offset %d has length %d but only %d bytes remain", t, start, length, len(b)-p.pos)
	}
	val := b[p.pos : p.pos+int(length)]
	p.pos += int(length)
	if depth > 0 {
		return nil // attributes inside sequences are not the image's
	}
	if meta != (group == 0x0002) {
		if meta {
			return nil
		}
		return nil // a stray group 0002 element in the data set is ignored
	}
	return p.img.set(t, val)
}

// skipUndefinedSequence skips the items of a sequence of undefined length,
// up to and including its Sequence Delimitation Item.
func (p *dicomParser) skipUndefinedSequence(depth int) error {
	if depth > maxDicomDepth {
		return fmt.Errorf("DICOM sequences nested deeper than %d levels", maxDicomDepth)
	}
	b := p.buf
	for {
		if len(b)-p.pos < 8 {
			return fmt.Errorf("DICOM sequence of undefined length runs past the end of the data")
		}
		t := tag(binary.LittleEndian.Uint16(b[p.pos:]), binary.LittleEndian.Uint16(b[p.pos+2:]))
		length := binary.LittleEndian.Uint32(b[p.pos+4:])
		at := p.pos
		p.pos += 8
		switch t {
		case tagSeqDelim:
			return nil
		case tagItem:
			if length == undefinedLength {
				// Elements until the Item Delimitation Item.
				for {
					if len(b)-p.pos < 8 {
						return fmt.Errorf("DICOM item of undefined length runs past the end of the data")
					}
					if tag(binary.LittleEndian.Uint16(b[p.pos:]), binary.LittleEndian.Uint16(b[p.pos+2:])) == tagItemDelim {
						p.pos += 8
						break
					}
					if err := p.element(depth, false); err != nil {
						return err
					}
				}
				continue
			}
			if int64(length) > int64(len(b)-p.pos) {
				return fmt.Errorf("DICOM item at offset %d has length %d but only %d bytes remain", at, length, len(b)-p.pos)
			}
			p.pos += int(length)
		default:
			return fmt.Errorf("DICOM sequence of undefined length: expected an item tag (FFFE,E000) at offset %d, found %s", at, t)
		}
	}
}

// set records one top-level attribute.
func (img *dicomImage) set(t dicomTag, val []byte) error {
	var err error
	switch t {
	case tagTransferSyntax:
		img.transferSyntax = dicomString(val)
	case tagSamples:
		img.samples, err = dicomUS(t, val)
		img.haveSamples = true
	case tagPhotometric:
		img.photometric = strings.ToUpper(dicomString(val))
		img.havePhotometric = true
	case tagPlanar:
		img.planar, err = dicomUS(t, val)
	case tagRows:
		img.rows, err = dicomUS(t, val)
		img.haveRows = true
	case tagCols:
		img.cols, err = dicomUS(t, val)
		img.haveCols = true
	case tagBitsAllocated:
		img.bitsAllocated, err = dicomUS(t, val)
		img.haveBits = true
	case tagBitsStored:
		img.bitsStored, err = dicomUS(t, val)
		img.haveBitsStored = true
	case tagHighBit:
		img.highBit, err = dicomUS(t, val)
		img.haveHighBit = true
	case tagPixelRepr:
		var r int
		r, err = dicomUS(t, val)
		img.signed = r == 1
	case tagWindowCenter:
		img.center, img.haveCenter, err = dicomDS(t, val)
	case tagWindowWidth:
		img.width, img.haveWidth, err = dicomDS(t, val)
	case tagIntercept:
		img.intercept, img.haveIntercept, err = dicomDS(t, val)
	case tagSlope:
		img.slope, img.haveSlope, err = dicomDS(t, val)
		if !img.haveSlope {
			img.slope = 1
		}
	case tagVOIFunction:
		if s := strings.ToUpper(dicomString(val)); s != "" {
			img.voiFunction = s
		}
	case tagPixelData:
		img.pixelData = val
	}
	return err
}

// dicomString returns a string value without its padding (NUL or space).
func dicomString(val []byte) string {
	return strings.TrimRight(strings.TrimSpace(string(val)), "\x00 ")
}

// dicomUS reads an unsigned short (or a 4-byte integer when the element
// says so, or an IS string written by a careless tool).
func dicomUS(t dicomTag, val []byte) (int, error) {
	switch len(val) {
	case 2:
		return int(binary.LittleEndian.Uint16(val)), nil
	case 4:
		v := binary.LittleEndian.Uint32(val)
		if v > 1<<20 {
			return 0, fmt.Errorf("DICOM element %s has value %d, expected an unsigned short", t, v)
		}
		return int(v), nil
	}
	return 0, fmt.Errorf("DICOM element %s has %d bytes, expected a 2-byte unsigned short", t, len(val))
}

// dicomDS reads the first value of a decimal string ("40\400" gives 40).
func dicomDS(t dicomTag, val []byte) (float64, bool, error) {
	s := dicomString(val)
	if i := strings.IndexByte(s, '\\'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, fmt.Errorf("DICOM element %s has value %q, expected a decimal number", t, s)
	}
	return v, true, nil
}

// render converts the stored values to display values in [0,1].
func (img *dicomImage) render() (*floatImage, error) {
	if !img.haveRows || !img.haveCols || !img.haveBits {
		return nil, fmt.Errorf("DICOM file lacks Rows (0028,0010), Columns (0028,0011) or Bits Allocated (0028,0100)")
	}
	if img.rows <= 0 || img.cols <= 0 {
		return nil, fmt.Errorf("DICOM image is %dx%d, expected positive Rows and Columns", img.rows, img.cols)
	}
	ba := img.bitsAllocated
	if ba != 8 && ba != 16 {
		return nil, fmt.Errorf("DICOM Bits Allocated is %d, expected 8 or 16", ba)
	}
	bs := img.bitsStored
	if !img.haveBitsStored {
		bs = ba
	}
	if bs < 1 || bs > ba {
		return nil, fmt.Errorf("DICOM Bits Stored is %d with Bits Allocated %d, expected 1..%d", bs, ba, ba)
	}
	hb := img.highBit
	if !img.haveHighBit {
		hb = bs - 1
	}
	if hb < bs-1 || hb >= ba {
		return nil, fmt.Errorf("DICOM High Bit is %d with Bits Stored %d and Bits Allocated %d, expected %d..%d", hb, bs, ba, bs-1, ba-1)
	}
	photo := img.photometric
	if !img.havePhotometric {
		photo = "MONOCHROME2"
	}
	spp := img.samples
	switch photo {
	case "MONOCHROME1", "MONOCHROME2":
		if spp != 1 {
			return nil, fmt.Errorf("DICOM %s image has Samples per Pixel %d, expected 1", photo, spp)
		}
	case "RGB":
		if spp != 3 {
			return nil, fmt.Errorf("DICOM RGB image has Samples per Pixel %d, expected 3", spp)
		}
	default:
		return nil, fmt.Errorf("DICOM Photometric Interpretation %q is not supported, expected MONOCHROME1, MONOCHROME2 or RGB", photo)
	}
	n := int64(img.rows) * int64(img.cols)
	if n*int64(spp) > MaxPixels {
		return nil, fmt.Errorf("DICOM image is %dx%dx%d, more than %d pixels", img.rows, img.cols, spp, MaxPixels)
	}
	need := n * int64(spp) * int64(ba/8)
	if int64(len(img.pixelData)) < need {
		return nil, fmt.Errorf("DICOM Pixel Data has %d bytes, expected %d for %dx%d pixels x %d samples x %d bits", len(img.pixelData), need, img.rows, img.cols, spp, ba)
	}
	out := newFloatImage(img.cols, img.rows, spp)
	shift := uint(hb + 1 - bs)
	mask := uint32(1)<<uint(bs) - 1
	signBit := uint32(1) << uint(bs-1)
	data := img.pixelData
	raw := func(i int) float64 { // i: sample index in storage order
		var u uint32
		if ba == 8 {
			u = uint32(data[i])
		} else {
			u = uint32(binary.LittleEndian.Uint16(data[2*i:]))
		}
		u = (u >> shift) & mask
		if img.signed && u&signBit != 0 {
			return float64(int64(u) - int64(mask) - 1)
		}
		return float64(u)
	}
	if photo == "RGB" {
		// Color: stored values scaled by the stored range; no VOI.
		scale := 1 / float64(mask)
		for y := 0; y < img.rows; y++ {
			for x := 0; x < img.cols; x++ {
				p := y*img.cols + x
				for c := 0; c < 3; c++ {
					var i int
					if img.planar == 1 {
						i = c*int(n) + p
					} else {
						i = p*3 + c
					}
					v := raw(i)
					if img.signed {
						v += float64(signBit)
					}
					out.pix[c][p] = float32(clamp01(v * scale))
				}
			}
		}
		return out, nil
	}
	slope, icpt := img.slope, img.intercept
	if slope == 0 {
		slope = 1 // a zero slope would flatten the image; treat as absent
	}
	vals := out.pix[0]
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range vals {
		v := raw(i)*slope + icpt
		vals[i] = float32(v)
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	var f func(float64) float64
	useWindow := img.haveCenter && img.haveWidth
	if useWindow {
		c, w := img.center, img.width
		switch img.voiFunction {
		case "LINEAR_EXACT":
			if w <= 0 {
				useWindow = false
				break
			}
			f = func(x float64) float64 {
				switch {
				case x <= c-w/2:
					return 0
				case x > c+w/2:
					return 1
				}
				return (x-c)/w + 0.5
			}
		case "SIGMOID":
			if w <= 0 {
				useWindow = false
				break
			}
			f = func(x float64) float64 { return 1 / (1 + math.Exp(-4*(x-c)/w)) }
		default: // LINEAR (PS3.3 C.11.2.1.2.1)
			if w < 1 {
				useWindow = false
				break
			}
			f = func(x float64) float64 {
				switch {
				case x <= c-0.5-(w-1)/2:
					return 0
				case x > c-0.5+(w-1)/2:
					return 1
				}
				if w == 1 {
					return 1
				}
				return (x-(c-0.5))/(w-1) + 0.5
			}
		}
	}
	if !useWindow {
		if hi > lo {
			inv := 1 / (hi - lo)
			f = func(x float64) float64 { return (x - lo) * inv }
		} else {
			f = func(float64) float64 { return 0 }
		}
	}
	invert := photo == "MONOCHROME1"
	for i, v := range vals {
		y := clamp01(f(float64(v)))
		if invert {
			y = 1 - y
		}
		vals[i] = float32(y)
	}
	return out, nil
}

func clamp01(v float64) float64 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}
