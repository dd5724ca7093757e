package npy

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil/refdata"
)

// build returns a .npy file with the given format version, header dict and
// data, padded as the NumPy format specification describes.
func build(version byte, dict string, data []byte) []byte {
	pre := 10
	if version >= 2 {
		pre = 12
	}
	h := dict
	for (pre+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	b := []byte(magic)
	b = append(b, version, 0)
	if version >= 2 {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	}
	b = append(b, h...)
	return append(b, data...)
}

func TestParseVersions(t *testing.T) {
	data := make([]byte, 0, 24)
	for _, v := range []float32{1.5, -2, 0, 3.25, 1e-7, float32(math.Inf(1))} {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	for _, ver := range []byte{1, 2, 3} {
		f := build(ver, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data)
		a, err := Parse(f)
		if err != nil {
			t.Fatalf("version %d: %v", ver, err)
		}
		if a.DType != "f4" || len(a.Shape) != 2 || a.Shape[0] != 2 || a.Shape[1] != 3 {
			t.Fatalf("version %d: got %s %v", ver, a.DType, a.Shape)
		}
		got, err := a.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != 1.5 || got[1] != -2 || got[3] != 3.25 || got[4] != 1e-7 || !math.IsInf(float64(got[5]), 1) {
			t.Fatalf("values %v", got)
		}
	}
}

func TestParseDTypes(t *testing.T) {
	i64 := binary.LittleEndian.AppendUint64(nil, uint64(^uint64(0))) // -1
	i64 = binary.LittleEndian.AppendUint64(i64, 49407)
	a, err := Parse(build(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", i64))
	if err != nil {
		t.Fatal(err)
	}
	iv, err := a.Int64()
	if err != nil || iv[0] != -1 || iv[1] != 49407 {
		t.Fatalf("int64 %v %v", iv, err)
	}
	f64 := binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1))
	a, err = Parse(build(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", f64))
	if err != nil {
		t.Fatal(err)
	}
	fv, _ := a.Float64()
	if len(a.Shape) != 0 || a.Len() != 1 || fv[0] != 0.1 {
		t.Fatalf("scalar f8: %v %v", a.Shape, fv)
	}
	a, err = Parse(build(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 3), }", []byte{0, 128, 255}))
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.Uint8()
	if err != nil || u[0] != 0 || u[1] != 128 || u[2] != 255 {
		t.Fatalf("uint8 %v %v", u, err)
	}
	a, err = Parse(build(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", nil))
	if err != nil || a.Len() != 0 {
		t.Fatalf("empty: %v %v", a, err)
	}
}

func TestParseErrors(t *testing.T) {
	f4 := "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
	good := build(1, f4, make([]byte, 8))
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "not a .npy file"},
		{"bad magic", []byte("PK\x03\x04 this is a zip"), "not a .npy file"},
		{"version 9", append([]byte(magic+"\x09\x00"), good[8:]...), "unsupported format version"},
		{"header past end", good[:20], "runs past the end"},
		{"big endian", build(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", make([]byte, 8)), "byte order"},
		{"fortran", build(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", make([]byte, 8)), "Fortran"},
		{"complex", build(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", make([]byte, 16)), "unsupported dtype"},
		{"object", build(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", make([]byte, 16)), "unsupported dtype"},
		{"short data", build(1, f4, make([]byte, 7)), "expected 8"},
		{"long data", build(1, f4, make([]byte, 9)), "expected 8"},
		{"no shape", build(1, "{'descr': '<f4', 'fortran_order': False, }", nil), "no 'shape'"},
		{"bad dim", build(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", nil), "bad dimension"},
		{"huge shape", build(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", nil), "too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.file)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing.npy")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

// TestGoldenFiles reads arrays written by numpy in the golden data set.
func TestGoldenFiles(t *testing.T) {
	root := refdata.GoldenDir(t)
	a, err := Read(filepath.Join(root, "txt2img", "ddim_4steps", "initial_latents.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if a.DType != "f4" || a.Len() != 4*32*32 {
		t.Fatalf("initial_latents: %s %v", a.DType, a.Shape)
	}
	b, err := Read(filepath.Join(root, "txt2img", "ddim_4steps", "image_uint8.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if b.DType != "u1" {
		t.Fatalf("image_uint8 dtype %s", b.DType)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(build(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", make([]byte, 8)))
	f.Add(build(2, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1), }", make([]byte, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(b)
		if err == nil {
			_, _ = a.Float64()
		}
	})
}
