package metrics

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/roentgo/roentgo/internal/npy"
)

// Array is a numeric array read from a .npy file, converted to float64.
type Array struct {
	// Shape is the array's shape; empty for a 0-d array.
	Shape []int
	// Data holds the elements in row-major (C) order.
	Data []float64
	// Descr is the dtype the file stored ("<f8" or "<f4").
	Descr string
}

// npyMagic opens every .npy file.
const npyMagic = "\x93NUMPY"

// ParseNPY decodes a whole .npy file (format versions 1.0, 2.0 and 3.0)
// with the module's one strict parser (internal/npy: exactly numpy's header
// dictionary, C order, data exactly as long as the shape says). Only
// little-endian float64 ('<f8') and float32 ('<f4') arrays are accepted
// here; anything else is an error.
func ParseNPY(b []byte) (*Array, error) {
	a, err := npy.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("metrics: npy: %w", err)
	}
	out := &Array{Shape: a.Shape}
	switch a.DType {
	case "f8":
		out.Descr = "<f8"
	case "f4":
		out.Descr = "<f4"
	default:
		return nil, fmt.Errorf("metrics: npy: dtype %s not supported (want '<f8' or '<f4')", a.DType)
	}
	if out.Data, err = a.Float64(); err != nil {
		return nil, fmt.Errorf("metrics: npy: %w", err)
	}
	return out, nil
}

// AppendNPY appends the .npy (format 1.0, '<f8', C order) encoding of a
// float64 array with the given shape to b. It panics if the shape does not
// match len(data).
func AppendNPY(b []byte, shape []int, data []float64) []byte {
	count := 1
	dims := make([]string, len(shape))
	for i, d := range shape {
		count *= d
		dims[i] = strconv.Itoa(d)
	}
	if count != len(data) {
		panic(fmt.Sprintf("metrics: AppendNPY: shape %v does not hold %d values", shape, len(data)))
	}
	st := strings.Join(dims, ", ")
	if len(shape) == 1 {
		st += ","
	}
	h := "{'descr': '<f8', 'fortran_order': False, 'shape': (" + st + "), }"
	// Pad with spaces so that magic+version+length+header is a multiple of
	// 64, ending in a newline, as numpy does.
	total := 10 + len(h) + 1
	h += strings.Repeat(" ", (64-total%64)%64) + "\n"
	b = append(b, npyMagic...)
	b = append(b, 1, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	b = append(b, h...)
	for _, v := range data {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// maxNPZMember bounds the uncompressed size of one .npz member (4 GiB).
const maxNPZMember = 4 << 30

// ParseNPZ decodes a .npz archive (numpy.savez or numpy.savez_compressed)
// held in b. Keys are the member names without ".npy". Every member must be a
// .npy file that ParseNPY accepts.
func ParseNPZ(b []byte) (map[string]*Array, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("metrics: npz: not a zip archive: %w", err)
	}
	out := map[string]*Array{}
	for _, f := range zr.File {
		name, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok || name == "" {
			return nil, fmt.Errorf("metrics: npz: member %q is not a .npy file", f.Name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("metrics: npz: member %q repeated", f.Name)
		}
		if f.UncompressedSize64 > maxNPZMember {
			return nil, fmt.Errorf("metrics: npz: member %q is too large (%d bytes)", f.Name, f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("metrics: npz: member %q: %w", f.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("metrics: npz: member %q: %w", f.Name, err)
		}
		if uint64(len(data)) != f.UncompressedSize64 {
			return nil, fmt.Errorf("metrics: npz: member %q: size %d does not match the archive's %d", f.Name, len(data), f.UncompressedSize64)
		}
		a, err := ParseNPY(data)
		if err != nil {
			return nil, fmt.Errorf("metrics: npz: member %q: %w", f.Name, err)
		}
		out[name] = a
	}
	return out, nil
}

// StatsFromNPZ decodes feature statistics from a .npz archive with keys "mu"
// (shape [D]) and "sigma" (shape [D, D]), as pytorch-fid's --save-stats and
// clean-fid's saved reference statistics store them. Other members are
// ignored. Stats.N is 0 (unknown).
func StatsFromNPZ(b []byte) (*Stats, error) {
	arrs, err := ParseNPZ(b)
	if err != nil {
		return nil, err
	}
	mu, sigma := arrs["mu"], arrs["sigma"]
	if mu == nil || sigma == nil {
		return nil, errors.New("metrics: npz: feature statistics need members \"mu\" and \"sigma\"")
	}
	if len(mu.Shape) != 1 || mu.Shape[0] == 0 {
		return nil, fmt.Errorf("metrics: npz: mu has shape %v, want [D]", mu.Shape)
	}
	d := mu.Shape[0]
	if len(sigma.Shape) != 2 || sigma.Shape[0] != d || sigma.Shape[1] != d {
		return nil, fmt.Errorf("metrics: npz: sigma has shape %v, want [%d %d] to match mu", sigma.Shape, d, d)
	}
	return &Stats{Mu: mu.Data, Sigma: mat.NewDense(d, d, sigma.Data)}, nil
}

// ReadStats reads feature statistics from a .npz file; see StatsFromNPZ.
func ReadStats(path string) (*Stats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: reading statistics: %w", err)
	}
	s, err := StatsFromNPZ(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return s, nil
}

// EncodeNPZ returns the .npz encoding of arrays (name → shape and float64
// data, row-major), members stored uncompressed as numpy.savez does, in the
// order of names.
func EncodeNPZ(names []string, shapes [][]int, data [][]float64) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, name := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(AppendNPY(nil, shapes[i], data[i])); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteStats writes s to path as a .npz with members "mu" and "sigma"
// (float64), readable by numpy.load, pytorch-fid and clean-fid. The file is
// written to a temporary name and renamed, so no partial file is left.
func WriteStats(path string, s *Stats) error {
	if err := s.validate("WriteStats"); err != nil {
		return err
	}
	d := s.Dim()
	b, err := EncodeNPZ([]string{"mu", "sigma"}, [][]int{{d}, {d, d}}, [][]float64{s.Mu, rowMajor(s.Sigma)})
	if err != nil {
		return fmt.Errorf("metrics: writing statistics: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("metrics: writing statistics: %w", err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("metrics: writing statistics: %w", werr)
	}
	return nil
}
