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

// maxNPYHeader bounds the header length accepted (numpy itself refuses
// headers over 10000 bytes unless told otherwise).
const maxNPYHeader = 1 << 16

// ParseNPY decodes a whole .npy file (format versions 1.0, 2.0 and 3.0).
// Only little-endian float64 ('<f8') and float32 ('<f4') arrays in C order
// are accepted; anything else, a malformed header, or a data length that
// does not match the shape, is an error.
func ParseNPY(b []byte) (*Array, error) {
	if len(b) < 10 || string(b[:6]) != npyMagic {
		return nil, errors.New("metrics: npy: not a .npy file (bad magic)")
	}
	major, minor := b[6], b[7]
	var hlen, off int
	switch major {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, errors.New("metrics: npy: truncated header length")
		}
		h := binary.LittleEndian.Uint32(b[8:12])
		if h > maxNPYHeader {
			return nil, fmt.Errorf("metrics: npy: header of %d bytes is too long", h)
		}
		hlen, off = int(h), 12
	default:
		return nil, fmt.Errorf("metrics: npy: unsupported format version %d.%d (want 1.0, 2.0 or 3.0)", major, minor)
	}
	if minor != 0 {
		return nil, fmt.Errorf("metrics: npy: unsupported format version %d.%d (want 1.0, 2.0 or 3.0)", major, minor)
	}
	if len(b)-off < hlen {
		return nil, fmt.Errorf("metrics: npy: header says %d bytes but only %d follow", hlen, len(b)-off)
	}
	descr, fortran, shape, err := parseNPYHeader(string(b[off : off+hlen]))
	if err != nil {
		return nil, err
	}
	if fortran {
		return nil, errors.New("metrics: npy: fortran_order True arrays are not supported (save a C-ordered array)")
	}
	var itemsize int
	switch descr {
	case "<f8":
		itemsize = 8
	case "<f4":
		itemsize = 4
	default:
		return nil, fmt.Errorf("metrics: npy: dtype %q not supported (want '<f8' or '<f4')", descr)
	}
	count := 1
	for _, d := range shape {
		if d != 0 && count > math.MaxInt/itemsize/d {
			return nil, fmt.Errorf("metrics: npy: shape %v is too large", shape)
		}
		count *= d
	}
	data := b[off+hlen:]
	if len(data) != count*itemsize {
		return nil, fmt.Errorf("metrics: npy: shape %v of %s needs %d data bytes, file has %d", shape, descr, count*itemsize, len(data))
	}
	out := &Array{Shape: shape, Data: make([]float64, count), Descr: descr}
	if itemsize == 8 {
		for i := range out.Data {
			out.Data[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		}
	} else {
		for i := range out.Data {
			out.Data[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
		}
	}
	return out, nil
}

// parseNPYHeader parses the header dictionary, a Python literal such as
//
//	{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
//
// It requires exactly the keys descr, fortran_order and shape.
func parseNPYHeader(h string) (descr string, fortran bool, shape []int, err error) {
	fail := func(format string, args ...any) (string, bool, []int, error) {
		return "", false, nil, fmt.Errorf("metrics: npy: bad header: "+format, args...)
	}
	if !strings.HasSuffix(h, "\n") {
		return fail("does not end in a newline")
	}
	p := &pyLexer{s: h}
	if !p.eat('{') {
		return fail("not a dictionary")
	}
	seen := map[string]bool{}
	for {
		if p.eat('}') {
			break
		}
		key, ok := p.str()
		if !ok {
			return fail("expected a quoted key at byte %d", p.i)
		}
		if seen[key] {
			return fail("key %q repeated", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return fail("expected ':' after %q", key)
		}
		switch key {
		case "descr":
			if descr, ok = p.str(); !ok {
				return fail("descr is not a string (structured dtypes are not supported)")
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				fortran = true
			case p.word("False"):
				fortran = false
			default:
				return fail("fortran_order is not True or False")
			}
		case "shape":
			if shape, ok = p.tuple(); !ok {
				return fail("shape is not a tuple of non-negative integers")
			}
		default:
			return fail("unexpected key %q", key)
		}
		if p.eat(',') {
			continue
		}
		if !p.eat('}') {
			return fail("expected ',' or '}' at byte %d", p.i)
		}
		break
	}
	p.space()
	if p.i != len(p.s) {
		return fail("trailing characters after the dictionary")
	}
	if len(seen) != 3 {
		return fail("want keys descr, fortran_order and shape")
	}
	return descr, fortran, shape, nil
}

// pyLexer reads the small Python literal subset of .npy headers.
type pyLexer struct {
	s string
	i int
}

func (p *pyLexer) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *pyLexer) eat(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// word consumes the identifier w if it is next.
func (p *pyLexer) word(w string) bool {
	p.space()
	if strings.HasPrefix(p.s[p.i:], w) {
		end := p.i + len(w)
		if end < len(p.s) && (isAlnum(p.s[end]) || p.s[end] == '_') {
			return false
		}
		p.i = end
		return true
	}
	return false
}

// str reads a quoted string without escapes.
func (p *pyLexer) str() (string, bool) {
	p.space()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", false
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", false
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsAny(v, "\\\n") {
		return "", false
	}
	p.i += end + 2
	return v, true
}

// tuple reads a tuple of non-negative integers: (), (n,), (n, m), ...
func (p *pyLexer) tuple() ([]int, bool) {
	if !p.eat('(') {
		return nil, false
	}
	shape := []int{}
	for {
		if p.eat(')') {
			// A one-element tuple needs its trailing comma.
			return shape, true
		}
		p.space()
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i == start || p.i-start > 18 {
			return nil, false
		}
		v, err := strconv.Atoi(p.s[start:p.i])
		if err != nil {
			return nil, false
		}
		if p.i < len(p.s) && p.s[p.i] == 'L' { // Python 2 long suffix
			p.i++
		}
		shape = append(shape, v)
		if p.eat(',') {
			continue
		}
		if !p.eat(')') || len(shape) == 1 {
			return nil, false
		}
		return shape, true
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
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
