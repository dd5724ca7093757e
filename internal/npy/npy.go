package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Array is a decoded .npy array.
type Array struct {
	// Shape is the array's shape ([] for a scalar).
	Shape []int
	// DType is the NumPy type string without byte order, e.g. "f4", "f8", "i8", "u1".
	DType string
	// Data holds the raw element bytes in C order, little-endian.
	Data []byte
}

// magic is the 6-byte prefix of every .npy file.
const magic = "\x93NUMPY"

// maxHeader bounds the header length so a corrupt file cannot ask for much
// memory (numpy itself refuses headers over 10000 bytes unless told otherwise).
const maxHeader = 1 << 16

// Read reads and decodes the .npy file at path.
func Read(path string) (*Array, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	a, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	return a, nil
}

// Parse decodes an in-memory .npy file (format versions 1.0, 2.0 and 3.0).
// It is strict: the header must be the dictionary numpy writes, with exactly
// the keys descr, fortran_order and shape, ending in a newline; the dtype one
// of the types Array describes, little-endian (or single-byte); the array in
// C order; and the data exactly as long as the shape says. Data aliases buf.
func Parse(buf []byte) (*Array, error) {
	if len(buf) < 10 || string(buf[:6]) != magic {
		return nil, errors.New("not a .npy file (expected the magic \\x93NUMPY)")
	}
	major, minor := buf[6], buf[7]
	var hlen, start int
	switch major {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(buf[8:10])), 10
	case 2, 3:
		if len(buf) < 12 {
			return nil, errors.New("truncated header length")
		}
		h := binary.LittleEndian.Uint32(buf[8:12])
		if h > maxHeader {
			return nil, fmt.Errorf("header length %d exceeds the %d limit", h, maxHeader)
		}
		hlen, start = int(h), 12
	}
	if major < 1 || major > 3 || minor != 0 {
		return nil, fmt.Errorf("unsupported format version %d.%d (expected 1.0, 2.0 or 3.0)", major, minor)
	}
	if start+hlen > len(buf) {
		return nil, fmt.Errorf("header length %d runs past the end of the %d-byte file", hlen, len(buf))
	}
	descr, fortran, shape, err := parseHeader(string(buf[start : start+hlen]))
	if err != nil {
		return nil, err
	}
	if fortran {
		return nil, errors.New("Fortran-order arrays (fortran_order True) are not supported (expected C order)")
	}
	dt, size, err := parseDescr(descr)
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range shape {
		if d != 0 && n > math.MaxInt/size/d {
			return nil, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	data := buf[start+hlen:]
	if len(data) != n*size {
		return nil, fmt.Errorf("data has %d bytes; shape %v of %s needs %d (expected %d bytes)", len(data), shape, descr, n*size, n*size)
	}
	return &Array{Shape: shape, DType: dt, Data: data}, nil
}

func parseDescr(d string) (string, int, error) {
	if len(d) < 2 {
		return "", 0, fmt.Errorf("unsupported dtype %q", d)
	}
	order, t := d[0], d[1:]
	sizes := map[string]int{"f4": 4, "f8": 8, "i8": 8, "i4": 4, "u1": 1, "i1": 1, "b1": 1, "f2": 2}
	size, ok := sizes[t]
	if !ok {
		return "", 0, fmt.Errorf("unsupported dtype %q (expected f4, f8, f2, i8, i4, i1, u1 or b1)", d)
	}
	switch {
	case order == '<', order == '|' && size == 1, order == '=' && size == 1:
	default:
		return "", 0, fmt.Errorf("unsupported byte order in dtype %q (expected little-endian '<')", d)
	}
	return t, size, nil
}

// parseHeader parses the header dictionary, a Python literal such as
//
//	{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
//
// with exactly the keys descr, fortran_order and shape, followed by padding
// and a newline.
func parseHeader(h string) (descr string, fortran bool, shape []int, err error) {
	fail := func(format string, args ...any) (string, bool, []int, error) {
		return "", false, nil, fmt.Errorf("bad header: "+format, args...)
	}
	if !strings.HasSuffix(h, "\n") {
		return fail("does not end in a newline")
	}
	p := &lexer{s: h}
	if !p.eat('{') {
		return fail("not a dictionary")
	}
	seen := map[string]bool{}
	for !p.eat('}') {
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
				return fail("shape is not a tuple of non-negative integers (bad dimension in shape)")
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
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return fail("no '%s' (want keys descr, fortran_order and shape)", k)
		}
	}
	return descr, fortran, shape, nil
}

// lexer reads the small Python literal subset of .npy headers.
type lexer struct {
	s string
	i int
}

func (p *lexer) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *lexer) eat(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// word consumes the identifier w if it is next.
func (p *lexer) word(w string) bool {
	p.space()
	if !strings.HasPrefix(p.s[p.i:], w) {
		return false
	}
	end := p.i + len(w)
	if end < len(p.s) && (isAlnum(p.s[end]) || p.s[end] == '_') {
		return false
	}
	p.i = end
	return true
}

// str reads a quoted string without escapes.
func (p *lexer) str() (string, bool) {
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

// tuple reads a tuple of non-negative integers: (), (n,), (n, m), ... (a
// Python 2 long suffix L is allowed).
func (p *lexer) tuple() ([]int, bool) {
	if !p.eat('(') {
		return nil, false
	}
	shape := []int{}
	for {
		if p.eat(')') {
			return shape, true
		}
		p.space()
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i == start || p.i-start > 19 {
			return nil, false
		}
		v, err := strconv.Atoi(p.s[start:p.i])
		if err != nil {
			return nil, false
		}
		if p.i < len(p.s) && p.s[p.i] == 'L' {
			p.i++
		}
		shape = append(shape, v)
		if p.eat(',') {
			continue
		}
		// A one-element tuple needs its trailing comma.
		if !p.eat(')') || len(shape) == 1 {
			return nil, false
		}
		return shape, true
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Len returns the number of elements.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// Float32 returns the data as float32 values; float64 data is rounded, integer
// data converted. It fails for other dtypes.
func (a *Array) Float32() ([]float32, error) {
	n := a.Len()
	out := make([]float32, n)
	switch a.DType {
	case "f4":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.Data[4*i:]))
		}
	case "f8":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(a.Data[8*i:])))
		}
	default:
		f, err := a.Float64()
		if err != nil {
			return nil, err
		}
		for i, v := range f {
			out[i] = float32(v)
		}
	}
	return out, nil
}

// Float64 returns the data converted to float64 (f4, f8, i8, i4, i1, u1, b1).
func (a *Array) Float64() ([]float64, error) {
	n := a.Len()
	out := make([]float64, n)
	d := a.Data
	for i := range out {
		switch a.DType {
		case "f4":
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:])))
		case "f8":
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:]))
		case "i8":
			out[i] = float64(int64(binary.LittleEndian.Uint64(d[8*i:])))
		case "i4":
			out[i] = float64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		case "i1":
			out[i] = float64(int8(d[i]))
		case "u1", "b1":
			out[i] = float64(d[i])
		default:
			return nil, fmt.Errorf("npy: cannot convert dtype %s to float64", a.DType)
		}
	}
	return out, nil
}

// Int64 returns integer data (i8, i4, i1, u1, b1) as int64.
func (a *Array) Int64() ([]int64, error) {
	n := a.Len()
	out := make([]int64, n)
	d := a.Data
	for i := range out {
		switch a.DType {
		case "i8":
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		case "i4":
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		case "i1":
			out[i] = int64(int8(d[i]))
		case "u1", "b1":
			out[i] = int64(d[i])
		default:
			return nil, fmt.Errorf("npy: cannot convert dtype %s to int64", a.DType)
		}
	}
	return out, nil
}

// Uint8 returns u1 or b1 data.
func (a *Array) Uint8() ([]uint8, error) {
	if a.DType != "u1" && a.DType != "b1" {
		return nil, fmt.Errorf("npy: dtype %s is not uint8", a.DType)
	}
	return bytes.Clone(a.Data), nil
}
