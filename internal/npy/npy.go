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

// maxHeader bounds the header length so a corrupt file cannot ask for gigabytes.
const maxHeader = 1 << 20

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

// Parse decodes an in-memory .npy file. Data aliases buf.
func Parse(buf []byte) (*Array, error) {
	if len(buf) < 10 || string(buf[:6]) != magic {
		return nil, errors.New("not a .npy file (expected the magic \\x93NUMPY)")
	}
	major := buf[6]
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
	default:
		return nil, fmt.Errorf("unsupported format version %d.%d (expected 1, 2 or 3)", major, buf[7])
	}
	if start+hlen > len(buf) {
		return nil, fmt.Errorf("header length %d runs past the end of the %d-byte file", hlen, len(buf))
	}
	hdr := string(buf[start : start+hlen])
	descr, err := dictString(hdr, "descr")
	if err != nil {
		return nil, err
	}
	fortran, err := dictValue(hdr, "fortran_order")
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(fortran, "True") {
		return nil, errors.New("Fortran-order arrays are not supported (expected C order)")
	}
	shapeStr, err := dictValue(hdr, "shape")
	if err != nil {
		return nil, err
	}
	shape, err := parseShape(shapeStr)
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("data has %d bytes, expected %d for shape %v of %s", len(data), n*size, shape, descr)
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

// dictValue returns the text after 'key': in the header dict, up to the end.
func dictValue(hdr, key string) (string, error) {
	k := "'" + key + "'"
	i := strings.Index(hdr, k)
	if i < 0 {
		return "", fmt.Errorf("header %q has no %s", strings.TrimSpace(hdr), k)
	}
	rest := strings.TrimLeft(hdr[i+len(k):], " ")
	if !strings.HasPrefix(rest, ":") {
		return "", fmt.Errorf("malformed header near %s", k)
	}
	return strings.TrimLeft(rest[1:], " "), nil
}

func dictString(hdr, key string) (string, error) {
	v, err := dictValue(hdr, key)
	if err != nil {
		return "", err
	}
	if len(v) < 2 || (v[0] != '\'' && v[0] != '"') {
		return "", fmt.Errorf("malformed %s in header", key)
	}
	end := strings.IndexByte(v[1:], v[0])
	if end < 0 {
		return "", fmt.Errorf("unterminated %s in header", key)
	}
	return v[1 : 1+end], nil
}

func parseShape(v string) ([]int, error) {
	if !strings.HasPrefix(v, "(") {
		return nil, errors.New("malformed shape in header (expected a tuple)")
	}
	end := strings.IndexByte(v, ')')
	if end < 0 {
		return nil, errors.New("unterminated shape in header")
	}
	shape := []int{}
	for _, f := range strings.Split(v[1:end], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(strings.TrimSuffix(f, "L"))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bad dimension %q in shape", f)
		}
		shape = append(shape, d)
	}
	return shape, nil
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
