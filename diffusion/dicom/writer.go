package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Well-known UIDs and values.
const (
	// SecondaryCaptureImageStorage is the SOP Class UID of the files
	// written.
	SecondaryCaptureImageStorage = "1.2.840.10008.5.1.4.1.1.7"
	// ExplicitVRLittleEndian is the transfer syntax of the files written.
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	// SyntheticPatientName is the Patient's Name written when
	// SecondaryCapture.PatientName is empty: no real person's name.
	SyntheticPatientName = "SYNTHETIC^ROENTGO"
	// SyntheticPatientID is the Patient ID written when
	// SecondaryCapture.PatientID is empty.
	SyntheticPatientID = "SYNTHETIC"
	// MaxComments is the most characters Image Comments (LT) may hold.
	MaxComments = 10240
)

// SecondaryCapture is one synthetic grayscale image and the attributes that
// describe it. Only Pixels is required; empty UIDs get fresh ones (NewUID),
// empty names the synthetic defaults.
type SecondaryCapture struct {
	// Pixels is the image: *image.Gray is written with 8 bits allocated
	// and stored (OB), *image.Gray16 with 16 (OW), unsigned, MONOCHROME2
	// (0 is black). At most 65535 pixels a side.
	Pixels image.Image

	// SOPInstanceUID, StudyInstanceUID and SeriesInstanceUID identify the
	// image, its study and its series (NewUID when empty).
	SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID string

	// PatientName (PN, "" is SyntheticPatientName) and PatientID (LO, ""
	// is SyntheticPatientID). Never put a real person here.
	PatientName, PatientID string

	// StudyID and AccessionNumber (SH, up to 16 characters) may be empty.
	StudyID, AccessionNumber string
	// StudyDescription and SeriesDescription (LO, up to 64 characters;
	// omitted when empty).
	StudyDescription, SeriesDescription string
	// SeriesNumber and InstanceNumber (IS; 0 writes an empty value).
	SeriesNumber, InstanceNumber int
	// Modality (CS); "" is OT (other), the usual modality of secondary
	// captures.
	Modality string
	// BodyPartExamined (CS, e.g. CHEST; omitted when empty).
	BodyPartExamined string
	// Manufacturer (LO; "" is "roentgo"), ManufacturerModelName and
	// SoftwareVersions (LO; omitted when empty): the model that generated
	// the image and the program's version.
	Manufacturer, ManufacturerModelName, SoftwareVersions string
	// ImageComments (LT, up to MaxComments characters; omitted when
	// empty): the prompt and the generation parameters.
	ImageComments string
	// DerivationDescription (ST, up to 1024 characters; omitted when
	// empty).
	DerivationDescription string
	// Created, if not zero, is written as the instance creation, study,
	// content and secondary capture date and time (in its own location);
	// zero leaves the dates empty, so that the file depends only on the
	// fields above.
	Created time.Time
}

// element is one data element: tag, VR and the unpadded value.
type element struct {
	tag   uint32
	vr    string
	value []byte
}

func tag(group, elem uint16) uint32 { return uint32(group)<<16 | uint32(elem) }

// longVR reports whether vr has a 4-byte length in explicit VR encoding.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV":
		return true
	}
	return false
}

// builder collects elements, checking each value as it is added; the first
// error sticks.
type builder struct {
	elems []element
	utf8  bool // a text value is not plain ASCII
	err   error
}

func (b *builder) fail(t uint32, format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("dicom: (%04X,%04X): %s", t>>16, t&0xffff, fmt.Sprintf(format, args...))
	}
}

func (b *builder) add(t uint32, vr string, v []byte) {
	b.elems = append(b.elems, element{t, vr, v})
}

// text adds a string value of vr after checking it; a code string (CS) may
// hold several values separated by backslashes (Image Type), every other
// value is single (lengths are counted in characters).
func (b *builder) text(t uint32, vr, s string) {
	if !utf8.ValidString(s) {
		b.fail(t, "value is not valid UTF-8")
		return
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
		}
	}
	values := []string{s}
	if vr == "CS" {
		values = strings.Split(s, `\`)
	}
	for _, v := range values {
		if err := checkValue(vr, v, ascii); err != nil {
			b.fail(t, "%s %q: %v", vr, v, err)
			return
		}
	}
	if !ascii {
		b.utf8 = true
	}
	b.add(t, vr, []byte(s))
}

// checkValue checks one value of a string VR.
func checkValue(vr, v string, ascii bool) error {
	n := utf8.RuneCountInString(v)
	limits := map[string]int{"AE": 16, "CS": 16, "DA": 8, "DS": 16, "IS": 12, "LO": 64, "LT": 10240, "SH": 16, "ST": 1024, "TM": 14, "UI": 64, "PN": 64*3 + 2}
	if max, ok := limits[vr]; ok && n > max {
		return fmt.Errorf("%d characters; at most %d allowed", n, max)
	}
	textual := vr == "LO" || vr == "SH" || vr == "LT" || vr == "ST" || vr == "PN" || vr == "UT"
	if !ascii && !textual {
		return errors.New("only ASCII is allowed in this value representation")
	}
	for _, r := range v {
		switch {
		case r == '\r' || r == '\n' || r == '\f' || r == '\t':
			if vr != "LT" && vr != "ST" && vr != "UT" {
				return fmt.Errorf("control character %q not allowed", r)
			}
		case r < 0x20 || r == 0x7f:
			return fmt.Errorf("control character %q not allowed", r)
		}
	}
	switch vr {
	case "CS":
		for _, r := range v {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_') {
				return fmt.Errorf("character %q; code strings hold A-Z, 0-9, space and _", r)
			}
		}
	case "UI":
		return CheckUID(v)
	case "DA":
		if v != "" {
			if _, err := time.Parse("20060102", v); err != nil {
				return errors.New("expected a date YYYYMMDD")
			}
		}
	case "TM":
		if v != "" {
			if _, err := time.Parse("150405.000000", v); err != nil {
				if _, err2 := time.Parse("150405", v); err2 != nil {
					return errors.New("expected a time HHMMSS[.ffffff]")
				}
			}
		}
	case "IS":
		if v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < -(1<<31) || n >= 1<<31 {
				return errors.New("expected an integer in [-2^31, 2^31)")
			}
		}
	case "DS":
		if v != "" {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return errors.New("expected a decimal number")
			}
		}
	case "PN":
		if strings.Contains(v, `\`) {
			return errors.New("backslash not allowed")
		}
		groups := strings.Split(v, "=")
		if len(groups) > 3 {
			return errors.New("more than 3 component groups")
		}
		for _, g := range groups {
			if utf8.RuneCountInString(g) > 64 {
				return errors.New("a component group longer than 64 characters")
			}
			if strings.Count(g, "^") > 4 {
				return errors.New("more than 5 components")
			}
		}
	case "LO", "SH":
		if strings.Contains(v, `\`) {
			return errors.New("backslash not allowed")
		}
	}
	return nil
}

func (b *builder) us(t uint32, v int) {
	if v < 0 || v > 0xffff {
		b.fail(t, "US value %d out of range", v)
		return
	}
	var buf [2]byte
	binary.LittleEndian.PutUint16(buf[:], uint16(v))
	b.add(t, "US", buf[:])
}

// optional adds a text value unless it is empty.
func (b *builder) optional(t uint32, vr, s string) {
	if s != "" {
		b.text(t, vr, s)
	}
}

// pad returns v padded to even length for vr.
func pad(vr string, v []byte) []byte {
	if len(v)%2 == 0 {
		return v
	}
	switch vr {
	case "UI", "OB", "UN":
		return append(v, 0)
	}
	return append(v, ' ')
}

// encode writes the elements (sorted by tag) in explicit VR little endian.
func encode(w *bytes.Buffer, elems []element) error {
	sort.SliceStable(elems, func(i, j int) bool { return elems[i].tag < elems[j].tag })
	for i, e := range elems {
		if i > 0 && elems[i-1].tag == e.tag {
			return fmt.Errorf("dicom: (%04X,%04X) written twice", e.tag>>16, e.tag&0xffff)
		}
		v := pad(e.vr, append([]byte(nil), e.value...))
		var h [12]byte
		binary.LittleEndian.PutUint16(h[0:], uint16(e.tag>>16))
		binary.LittleEndian.PutUint16(h[2:], uint16(e.tag))
		copy(h[4:6], e.vr)
		if longVR(e.vr) {
			if uint64(len(v)) >= 0xffffffff {
				return fmt.Errorf("dicom: (%04X,%04X): value of %d bytes is too long", e.tag>>16, e.tag&0xffff, len(v))
			}
			binary.LittleEndian.PutUint32(h[8:], uint32(len(v)))
			w.Write(h[:12])
		} else {
			if len(v) > 0xffff {
				return fmt.Errorf("dicom: (%04X,%04X): value of %d bytes is too long for %s", e.tag>>16, e.tag&0xffff, len(v), e.vr)
			}
			binary.LittleEndian.PutUint16(h[6:], uint16(len(v)))
			w.Write(h[:8])
		}
		w.Write(v)
	}
	return nil
}

// Encode returns sc as a DICOM file (Part 10: preamble, "DICM", File Meta
// Information, data set in Explicit VR Little Endian). It returns an error,
// and no bytes, for a value it cannot encode as the standard requires: an
// unsupported image type or size, an invalid UID, a text too long for its
// value representation, characters a code string does not allow.
func Encode(sc *SecondaryCapture) ([]byte, error) {
	if sc == nil || sc.Pixels == nil {
		return nil, errors.New("dicom: no pixels")
	}
	bnd := sc.Pixels.Bounds()
	rows, cols := bnd.Dy(), bnd.Dx()
	if rows < 1 || cols < 1 || rows > 0xffff || cols > 0xffff {
		return nil, fmt.Errorf("dicom: image is %dx%d; expected 1 to 65535 pixels a side", cols, rows)
	}
	var bits int
	var pixels []byte
	switch img := sc.Pixels.(type) {
	case *image.Gray:
		bits = 8
		pixels = make([]byte, 0, rows*cols+1)
		for y := 0; y < rows; y++ {
			o := y * img.Stride
			pixels = append(pixels, img.Pix[o:o+cols]...)
		}
	case *image.Gray16:
		bits = 16
		pixels = make([]byte, 2*rows*cols)
		for y := 0; y < rows; y++ {
			for x := 0; x < cols; x++ {
				o := y*img.Stride + 2*x
				// Gray16 stores big endian; DICOM here is little endian.
				pixels[2*(y*cols+x)] = img.Pix[o+1]
				pixels[2*(y*cols+x)+1] = img.Pix[o]
			}
		}
	default:
		return nil, fmt.Errorf("dicom: pixels of type %T; expected *image.Gray (8 bits) or *image.Gray16 (16 bits)", sc.Pixels)
	}

	uids := [3]string{sc.SOPInstanceUID, sc.StudyInstanceUID, sc.SeriesInstanceUID}
	for i := range uids {
		if uids[i] == "" {
			u, err := NewUID()
			if err != nil {
				return nil, err
			}
			uids[i] = u
		}
	}
	sop, study, series := uids[0], uids[1], uids[2]
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	num := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	var date, tm string
	if !sc.Created.IsZero() {
		date, tm = sc.Created.Format("20060102"), sc.Created.Format("150405")
	}

	b := &builder{}
	b.text(tag(0x0008, 0x0008), "CS", `DERIVED\SECONDARY`)
	if date != "" {
		b.text(tag(0x0008, 0x0012), "DA", date)
		b.text(tag(0x0008, 0x0013), "TM", tm)
	}
	b.text(tag(0x0008, 0x0016), "UI", SecondaryCaptureImageStorage)
	b.text(tag(0x0008, 0x0018), "UI", sop)
	b.text(tag(0x0008, 0x0020), "DA", date)
	b.text(tag(0x0008, 0x0023), "DA", date)
	b.text(tag(0x0008, 0x0030), "TM", tm)
	b.text(tag(0x0008, 0x0033), "TM", tm)
	b.text(tag(0x0008, 0x0050), "SH", sc.AccessionNumber)
	b.text(tag(0x0008, 0x0060), "CS", or(sc.Modality, "OT"))
	b.text(tag(0x0008, 0x0064), "CS", "SYN")
	b.text(tag(0x0008, 0x0070), "LO", or(sc.Manufacturer, "roentgo"))
	b.text(tag(0x0008, 0x0090), "PN", "")
	b.optional(tag(0x0008, 0x1030), "LO", sc.StudyDescription)
	b.optional(tag(0x0008, 0x103E), "LO", sc.SeriesDescription)
	b.optional(tag(0x0008, 0x1090), "LO", sc.ManufacturerModelName)
	b.optional(tag(0x0008, 0x2111), "ST", sc.DerivationDescription)
	b.text(tag(0x0010, 0x0010), "PN", or(sc.PatientName, SyntheticPatientName))
	b.text(tag(0x0010, 0x0020), "LO", or(sc.PatientID, SyntheticPatientID))
	b.text(tag(0x0010, 0x0030), "DA", "")
	b.text(tag(0x0010, 0x0040), "CS", "")
	b.optional(tag(0x0018, 0x0015), "CS", sc.BodyPartExamined)
	if date != "" {
		b.text(tag(0x0018, 0x1012), "DA", date)
		b.text(tag(0x0018, 0x1014), "TM", tm)
	}
	b.optional(tag(0x0018, 0x1020), "LO", sc.SoftwareVersions)
	b.text(tag(0x0020, 0x000D), "UI", study)
	b.text(tag(0x0020, 0x000E), "UI", series)
	b.text(tag(0x0020, 0x0010), "SH", sc.StudyID)
	b.text(tag(0x0020, 0x0011), "IS", num(sc.SeriesNumber))
	b.text(tag(0x0020, 0x0013), "IS", num(sc.InstanceNumber))
	b.text(tag(0x0020, 0x0020), "CS", "")
	if n := utf8.RuneCountInString(sc.ImageComments); n > MaxComments {
		return nil, fmt.Errorf("dicom: image comments of %d characters; at most %d fit (LT)", n, MaxComments)
	}
	b.optional(tag(0x0020, 0x4000), "LT", sc.ImageComments)
	b.us(tag(0x0028, 0x0002), 1)
	b.text(tag(0x0028, 0x0004), "CS", "MONOCHROME2")
	b.us(tag(0x0028, 0x0010), rows)
	b.us(tag(0x0028, 0x0011), cols)
	b.us(tag(0x0028, 0x0100), bits)
	b.us(tag(0x0028, 0x0101), bits)
	b.us(tag(0x0028, 0x0102), bits-1)
	b.us(tag(0x0028, 0x0103), 0)
	b.text(tag(0x0028, 0x0301), "CS", "NO")
	// A linear window over the whole stored range: display value =
	// stored / (2^bits - 1), as generated (PS3.3 C.11.2.1.2.1).
	b.text(tag(0x0028, 0x1050), "DS", strconv.Itoa(1<<(bits-1)))
	b.text(tag(0x0028, 0x1051), "DS", strconv.Itoa(1<<bits))
	b.text(tag(0x0028, 0x2110), "CS", "00")
	if bits == 8 {
		b.add(tag(0x7FE0, 0x0010), "OB", pixels)
	} else {
		b.add(tag(0x7FE0, 0x0010), "OW", pixels)
	}
	if b.utf8 {
		b.text(tag(0x0008, 0x0005), "CS", "ISO_IR 192")
	}
	if b.err != nil {
		return nil, b.err
	}

	meta := &builder{}
	meta.add(tag(0x0002, 0x0001), "OB", []byte{0, 1})
	meta.text(tag(0x0002, 0x0002), "UI", SecondaryCaptureImageStorage)
	meta.text(tag(0x0002, 0x0003), "UI", sop)
	meta.text(tag(0x0002, 0x0010), "UI", ExplicitVRLittleEndian)
	meta.text(tag(0x0002, 0x0012), "UI", ImplementationClassUID)
	meta.text(tag(0x0002, 0x0013), "SH", ImplementationVersionName)
	if meta.err != nil {
		return nil, meta.err
	}
	var mb bytes.Buffer
	if err := encode(&mb, meta.elems); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(132 + 12 + mb.Len() + len(pixels) + 4096)
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	var gl [4]byte
	binary.LittleEndian.PutUint32(gl[:], uint32(mb.Len()))
	if err := encode(&out, []element{{tag(0x0002, 0x0000), "UL", gl[:]}}); err != nil {
		return nil, err
	}
	out.Write(mb.Bytes())
	if err := encode(&out, b.elems); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
