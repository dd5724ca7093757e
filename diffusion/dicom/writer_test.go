package dicom

import (
	"bytes"
	"encoding/binary"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/diffusion/dicom/dicomtest"
	"github.com/stretchr/testify/require"
)

// ramp returns a w x h test image of the given depth with distinct values.
func ramp(w, h, bits int) image.Image {
	if bits == 8 {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i := range g.Pix {
			g.Pix[i] = uint8(i * 7)
		}
		return g
	}
	g := image.NewGray16(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		v := uint16(i * 4099)
		g.Pix[2*i], g.Pix[2*i+1] = uint8(v>>8), uint8(v)
	}
	return g
}

func sample(bits int) *SecondaryCapture {
	return &SecondaryCapture{
		Pixels:            ramp(16, 8, bits),
		SOPInstanceUID:    NameUID("test/sop"),
		StudyInstanceUID:  NameUID("test/study"),
		SeriesInstanceUID: NameUID("test/series"),
		StudyDescription:  "Synthetic chest radiograph",
		SeriesDescription: "small left pleural effusion",
		StudyID:           "SYN1",
		SeriesNumber:      1,
		InstanceNumber:    3,
		BodyPartExamined:  "CHEST",
		SoftwareVersions:  "roentgo",
		ImageComments:     "prompt: small left pleural effusion\nseed: 7, steps: 75, guidance: 4, scheduler: pndm",
	}
}

// elements parses a file written by Encode (explicit VR little endian, no
// sequences) into tag -> (VR, value).
func elements(t *testing.T, b []byte) map[uint32][2]string {
	t.Helper()
	require.Equal(t, make([]byte, 128), b[:128])
	require.Equal(t, "DICM", string(b[128:132]))
	out := map[uint32][2]string{}
	prev := uint32(0)
	for p := 132; p < len(b); {
		tg := uint32(binary.LittleEndian.Uint16(b[p:]))<<16 | uint32(binary.LittleEndian.Uint16(b[p+2:]))
		require.Greater(t, tg, prev, "tags ascending")
		prev = tg
		vr := string(b[p+4 : p+6])
		var n, hdr int
		if longVR(vr) {
			n, hdr = int(binary.LittleEndian.Uint32(b[p+8:])), 12
		} else {
			n, hdr = int(binary.LittleEndian.Uint16(b[p+6:])), 8
		}
		require.Zero(t, n%2, "even length of %08X", tg)
		out[tg] = [2]string{vr, string(b[p+hdr : p+hdr+n])}
		p += hdr + n
	}
	return out
}

func TestEncodeStructure(t *testing.T) {
	for _, bits := range []int{8, 16} {
		data, err := Encode(sample(bits))
		require.NoError(t, err)
		el := elements(t, data)
		// Group length = the bytes of the rest of group 0002.
		gl := binary.LittleEndian.Uint32([]byte(el[tag(2, 0)][1]))
		end := 132 + 12
		for p := end; binary.LittleEndian.Uint16(data[p:]) == 2; {
			vr := string(data[p+4 : p+6])
			if longVR(vr) {
				p += 12 + int(binary.LittleEndian.Uint32(data[p+8:]))
			} else {
				p += 8 + int(binary.LittleEndian.Uint16(data[p+6:]))
			}
			end = p
		}
		require.Equal(t, int(gl), end-132-12)
		require.Equal(t, SecondaryCaptureImageStorage+"\x00", el[tag(2, 2)][1])
		require.Equal(t, ExplicitVRLittleEndian+"\x00", el[tag(2, 0x10)][1])
		require.Equal(t, `DERIVED\SECONDARY `, el[tag(8, 8)][1])
		require.Equal(t, "SYN ", el[tag(8, 0x64)][1])
		require.Equal(t, "MONOCHROME2 ", el[tag(0x28, 4)][1])
		require.Equal(t, SyntheticPatientName+" ", el[tag(0x10, 0x10)][1])
		require.Equal(t, "", el[tag(0x10, 0x30)][1]) // birth date: present, empty
		require.NotContains(t, el, tag(8, 5))        // ASCII only: no character set
		vr := "OB"
		if bits == 16 {
			vr = "OW"
		}
		require.Equal(t, vr, el[tag(0x7fe0, 0x10)][0])
		require.Len(t, el[tag(0x7fe0, 0x10)][1], 16*8*bits/8)
	}
	// Deterministic: the same fields give the same bytes.
	a, err := Encode(sample(16))
	require.NoError(t, err)
	b, err := Encode(sample(16))
	require.NoError(t, err)
	require.Equal(t, a, b)
}

func TestUIDs(t *testing.T) {
	u, err := NewUID()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u, "2.25."))
	require.NoError(t, CheckUID(u))
	v, err := NewUID()
	require.NoError(t, err)
	require.NotEqual(t, u, v)
	require.Equal(t, NameUID("a"), NameUID("a"))
	require.NotEqual(t, NameUID("a"), NameUID("b"))
	require.NoError(t, CheckUID(NameUID("a")))
	require.NoError(t, CheckUID(ImplementationClassUID))
	for _, bad := range []string{"", "1..2", "1.02", "1.2a", strings.Repeat("1", 65)} {
		require.Error(t, CheckUID(bad), bad)
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := map[string]func(sc *SecondaryCapture){
		"rgb":          func(sc *SecondaryCapture) { sc.Pixels = image.NewRGBA(image.Rect(0, 0, 2, 2)) },
		"empty":        func(sc *SecondaryCapture) { sc.Pixels = image.NewGray(image.Rect(0, 0, 0, 2)) },
		"uid":          func(sc *SecondaryCapture) { sc.SOPInstanceUID = "1.02.3" },
		"long LO":      func(sc *SecondaryCapture) { sc.SeriesDescription = strings.Repeat("x", 65) },
		"CS chars":     func(sc *SecondaryCapture) { sc.BodyPartExamined = "chest" },
		"comments":     func(sc *SecondaryCapture) { sc.ImageComments = strings.Repeat("x", MaxComments+1) },
		"LO backslash": func(sc *SecondaryCapture) { sc.PatientID = `a\b` },
		"control":      func(sc *SecondaryCapture) { sc.StudyDescription = "a\nb" },
		"bad utf8":     func(sc *SecondaryCapture) { sc.ImageComments = "\xff" },
		"SH long":      func(sc *SecondaryCapture) { sc.StudyID = strings.Repeat("1", 17) },
	}
	for name, f := range cases {
		sc := sample(8)
		f(sc)
		data, err := Encode(sc)
		require.Error(t, err, name)
		require.Nil(t, data, name)
		require.True(t, strings.HasPrefix(err.Error(), "dicom: "), err.Error())
	}
	_, err := Encode(nil)
	require.Error(t, err)
}

// TestRoundTripDatasetReader writes 8- and 16-bit files and reads them back
// with the dataset package's strict DICOM reader: the full-range window makes
// its display values stored/(2^bits-1), so the pixels come back exactly
// (to float32 precision).
func TestRoundTripDatasetReader(t *testing.T) {
	for _, bits := range []int{8, 16} {
		const res = 16
		sc := sample(bits)
		sc.Pixels = ramp(res, res, bits)
		data, err := Encode(sc)
		require.NoError(t, err)
		got, err := dataset.Decode(data, res, false)
		require.NoError(t, err)
		max := float64(int(1)<<bits - 1)
		for i := 0; i < res*res; i++ {
			var v float64
			if bits == 8 {
				v = float64(sc.Pixels.(*image.Gray).Pix[i])
			} else {
				p := sc.Pixels.(*image.Gray16).Pix
				v = float64(uint16(p[2*i])<<8 | uint16(p[2*i+1]))
			}
			want := 2*(v/max) - 1
			for c := 0; c < 3; c++ {
				require.InDelta(t, want, float64(got[c*res*res+i]), 1e-6, "bits %d pixel %d", bits, i)
			}
		}
	}
}

func TestNonASCIIComments(t *testing.T) {
	sc := sample(8)
	sc.ImageComments = "prompt: épanchement pleural gauche"
	data, err := Encode(sc)
	require.NoError(t, err)
	el := elements(t, data)
	require.Equal(t, "ISO_IR 192", el[tag(8, 5)][1])
	require.True(t, bytes.Contains(data, []byte("épanchement")))
	sc.BodyPartExamined = "THORAX"
	sc.Modality = "ÉX"
	_, err = Encode(sc)
	require.Error(t, err) // CS is ASCII only
}

// TestDcmtkValidates runs dicom3tools' dciodvfy (the IOD checker) and dcmtk's
// dcmdump on written files; it skips when the tools are not installed
// (apt-get install dcmtk dicom3tools; CI installs them).
func TestDcmtkValidates(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, bits := range []int{8, 16} {
		for _, created := range []bool{false, true} {
			sc := sample(bits)
			if created {
				sc.Created = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
				sc.ImageComments = "prompt: épanchement pleural\nparameters: x"
			}
			data, err := Encode(sc)
			require.NoError(t, err)
			f := filepath.Join(dir, "sc"+string(rune('a'+len(files)))+".dcm")
			require.NoError(t, os.WriteFile(f, data, 0o644))
			files = append(files, f)
		}
	}
	dicomtest.Validate(t, files...)
}
