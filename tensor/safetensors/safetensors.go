package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header Parse accepts (the reference
// implementation's limit, 100 MB).
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header key holding the string metadata.
const metadataKey = "__metadata__"

// DType is a safetensors element type name, e.g. "F32" or "BF16".
type DType string

// The dtypes of the safetensors specification.
const (
	BOOL   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	F8E8M0 DType = "F8_E8M0"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
	C64    DType = "C64"
)

// dtypeOrder lists the dtypes in the reference implementation's order
// (increasing alignment); writers sort tensors by decreasing position in it.
var dtypeOrder = []DType{BOOL, U8, I8, F8E5M2, F8E4M3, F8E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64}

var dtypeInfo = func() map[DType][2]int {
	sizes := map[DType]int{
		BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1, F8E8M0: 1,
		I16: 2, U16: 2, F16: 2, BF16: 2,
		I32: 4, U32: 4, F32: 4,
		F64: 8, I64: 8, U64: 8, C64: 8,
	}
	m := make(map[DType][2]int, len(dtypeOrder))
	for rank, d := range dtypeOrder {
		m[d] = [2]int{sizes[d], rank}
	}
	return m
}()

// Size returns the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeInfo[d][0] }

// Valid reports whether d is a dtype of the specification.
func (d DType) Valid() bool { _, ok := dtypeInfo[d]; return ok }

// DTypes returns every dtype this package knows, in increasing alignment order.
func DTypes() []DType { return append([]DType(nil), dtypeOrder...) }

// TensorInfo describes one tensor: its name, dtype, shape and raw
// little-endian C-order bytes. In a File, Data aliases the file's memory.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape (1 for a 0-d tensor).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file.
type File struct {
	// Metadata is the "__metadata__" string map (nil when absent).
	Metadata map[string]string
	// Tensors are in file offset order.
	Tensors []TensorInfo

	index  map[string]int
	unmap  func() error // releases the memory of an opened file
	mapped []byte       // the mapping of an opened file (nil when read or parsed)
}

// Get returns the tensor called name.
func (f *File) Get(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	sort.Strings(names)
	return names
}

// Close releases the file's memory (unmaps it). The tensors' Data slices must
// not be used afterwards. Close is a no-op for a File from Parse, and calling
// it twice is safe.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap = nil
	f.mapped = nil
	return u()
}

// DropResident removes the pages of a memory-mapped file (from Open) from the
// process's resident set, for when its tensors will not be used for a while
// (e.g. a U-Net's weights while a VAE decodes). It changes no data: the pages
// stay in the operating system's page cache and the next access to a tensor
// faults them back. It is a no-op for a File from Parse or one that was read
// into memory, after Close, and on platforms other than Linux.
func (f *File) DropResident() error {
	if f.unmap == nil || f.mapped == nil {
		return nil
	}
	return dropPages(f.mapped)
}

// rawTensor is a header entry before validation against the data region.
type rawTensor struct {
	name       string
	dtype      DType
	shape      []int
	begin, end int
}

// Parse validates an in-memory safetensors file. The returned tensors' Data
// alias buf.
func Parse(buf []byte) (*File, error) {
	if len(buf) < 8 {
		return nil, fmt.Errorf("safetensors: file is %d bytes, shorter than the 8-byte header length", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the %d-byte limit (not a safetensors file?)", n, MaxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, fmt.Errorf("safetensors: header length %d runs past the end of the %d-byte file", n, len(buf))
	}
	header := buf[8 : 8+n]
	data := buf[8+n:]
	meta, raws, err := parseHeader(header)
	if err != nil {
		return nil, err
	}
	tensors, err := layout(raws, len(data))
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: meta, Tensors: make([]TensorInfo, len(tensors)), index: make(map[string]int, len(tensors))}
	for i, r := range tensors {
		f.Tensors[i] = TensorInfo{Name: r.name, DType: r.dtype, Shape: r.shape, Data: data[r.begin:r.end:r.end]}
		f.index[r.name] = i
	}
	return f, nil
}

// parseHeader decodes the JSON header, rejecting duplicate keys, non-string
// metadata, unknown dtypes and malformed numbers.
func parseHeader(h []byte) (map[string]string, []rawTensor, error) {
	if !utf8.Valid(h) {
		return nil, nil, errors.New("safetensors: header is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(h, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, errors.New("safetensors: header is not a JSON object (expected it to start with '{')")
	}
	dec := json.NewDecoder(bytes.NewReader(h))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "header"); err != nil {
		return nil, nil, err
	}
	var meta map[string]string
	var raws []rawTensor
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, jsonErr("header", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			if key == metadataKey {
				return nil, nil, errors.New("safetensors: header has __metadata__ twice")
			}
			return nil, nil, fmt.Errorf("safetensors: tensor %q appears twice in the header (names must be unique)", key)
		}
		seen[key] = true
		if key == metadataKey {
			if meta, err = parseMetadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		r, err := parseTensor(dec, key)
		if err != nil {
			return nil, nil, err
		}
		raws = append(raws, r)
	}
	if err := expectDelim(dec, '}', "header"); err != nil {
		return nil, nil, err
	}
	// Only whitespace (the writers' space padding) may follow the object.
	rest := h[dec.InputOffset():]
	if len(bytes.Trim(rest, " \t\r\n")) != 0 {
		return nil, nil, fmt.Errorf("safetensors: header has %d unexpected bytes after the JSON object (expected only space padding)", len(rest))
	}
	return meta, raws, nil
}

func jsonErr(where string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("safetensors: invalid JSON in %s: unexpected end of header", where)
	}
	return fmt.Errorf("safetensors: invalid JSON in %s: %v", where, err)
}

func expectDelim(dec *json.Decoder, d json.Delim, where string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(where, err)
	}
	if got, ok := tok.(json.Delim); !ok || got != d {
		return fmt.Errorf("safetensors: invalid JSON in %s: expected %q, found %s", where, string(d), describeToken(tok))
	}
	return nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return strconv.Quote(string(v))
	case string:
		return "string " + strconv.Quote(truncate(v))
	case json.Number:
		return "number " + truncate(string(v))
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// parseMetadata reads the "__metadata__" value: an object of strings, or null.
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr("__metadata__", err)
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("safetensors: __metadata__ must be an object of strings, found %s", describeToken(tok))
	}
	meta := map[string]string{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, jsonErr("__metadata__", err)
		}
		k, _ := kt.(string)
		if _, dup := meta[k]; dup {
			return nil, fmt.Errorf("safetensors: __metadata__ has key %q twice", k)
		}
		vt, err := dec.Token()
		if err != nil {
			return nil, jsonErr("__metadata__", err)
		}
		v, ok := vt.(string)
		if !ok {
			return nil, fmt.Errorf("safetensors: __metadata__[%q] must be a string, found %s", k, describeToken(vt))
		}
		meta[k] = v
	}
	if err := expectDelim(dec, '}', "__metadata__"); err != nil {
		return nil, err
	}
	return meta, nil
}

// parseTensor reads one tensor entry.
func parseTensor(dec *json.Decoder, name string) (rawTensor, error) {
	r := rawTensor{name: name}
	tok, err := dec.Token()
	if err != nil {
		return r, jsonErr(fmt.Sprintf("tensor %q", name), err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return r, fmt.Errorf("safetensors: tensor %q: expected an object with dtype, shape and data_offsets, found %s", name, describeToken(tok))
	}
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return r, jsonErr(fmt.Sprintf("tensor %q", name), err)
		}
		k, _ := kt.(string)
		switch k {
		case "dtype":
			if haveDType {
				return r, fmt.Errorf("safetensors: tensor %q has dtype twice", name)
			}
			haveDType = true
			vt, err := dec.Token()
			if err != nil {
				return r, jsonErr(fmt.Sprintf("tensor %q", name), err)
			}
			s, ok := vt.(string)
			if !ok {
				return r, fmt.Errorf("safetensors: tensor %q: dtype must be a string, found %s", name, describeToken(vt))
			}
			r.dtype = DType(s)
			if !r.dtype.Valid() {
				return r, fmt.Errorf("safetensors: tensor %q has unknown dtype %q (expected one of %v)", name, truncate(s), dtypeOrder)
			}
		case "shape":
			if haveShape {
				return r, fmt.Errorf("safetensors: tensor %q has shape twice", name)
			}
			haveShape = true
			if r.shape, err = intArray(dec, name, "shape", -1); err != nil {
				return r, err
			}
		case "data_offsets":
			if haveOffsets {
				return r, fmt.Errorf("safetensors: tensor %q has data_offsets twice", name)
			}
			haveOffsets = true
			off, err := intArray(dec, name, "data_offsets", 2)
			if err != nil {
				return r, err
			}
			r.begin, r.end = off[0], off[1]
		default:
			// Unknown fields are ignored, as by the reference implementation.
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return r, jsonErr(fmt.Sprintf("tensor %q", name), err)
			}
		}
	}
	if err := expectDelim(dec, '}', fmt.Sprintf("tensor %q", name)); err != nil {
		return r, err
	}
	switch {
	case !haveDType:
		return r, fmt.Errorf("safetensors: tensor %q has no dtype", name)
	case !haveShape:
		return r, fmt.Errorf("safetensors: tensor %q has no shape", name)
	case !haveOffsets:
		return r, fmt.Errorf("safetensors: tensor %q has no data_offsets", name)
	}
	return r, nil
}

// intArray reads a JSON array of non-negative integers; want >= 0 demands
// exactly that many.
func intArray(dec *json.Decoder, name, field string, want int) ([]int, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(fmt.Sprintf("tensor %q %s", name, field), err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("safetensors: tensor %q: %s must be an array of non-negative integers, found %s", name, field, describeToken(tok))
	}
	out := []int{}
	for dec.More() {
		vt, err := dec.Token()
		if err != nil {
			return nil, jsonErr(fmt.Sprintf("tensor %q %s", name, field), err)
		}
		num, ok := vt.(json.Number)
		if !ok {
			return nil, fmt.Errorf("safetensors: tensor %q: %s must hold non-negative integers, found %s", name, field, describeToken(vt))
		}
		v, err := strconv.ParseUint(string(num), 10, 63)
		if err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %s entry %s is not a non-negative integer below 2^63", name, field, truncate(string(num)))
		}
		out = append(out, int(v))
	}
	if err := expectDelim(dec, ']', fmt.Sprintf("tensor %q %s", name, field)); err != nil {
		return nil, err
	}
	if want >= 0 && len(out) != want {
		return nil, fmt.Errorf("safetensors: tensor %q: %s has %d entries, expected %d", name, field, len(out), want)
	}
	return out, nil
}

// numBytes returns numel(shape)*size, or ok=false if it overflows int.
func numBytes(shape []int, size int) (int, bool) {
	for _, d := range shape {
		if d == 0 {
			return 0, true
		}
	}
	n := uint64(size)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return int(n), true
}

// layout sorts the tensors by offset and checks that they tile the data region.
func layout(raws []rawTensor, dataLen int) ([]rawTensor, error) {
	for _, r := range raws {
		if r.begin > r.end {
			return nil, fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] begin after they end", r.name, r.begin, r.end)
		}
		if r.end > dataLen {
			return nil, fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] run past the end of the %d-byte data region", r.name, r.begin, r.end, dataLen)
		}
		nb, ok := numBytes(r.shape, r.dtype.Size())
		if !ok {
			return nil, fmt.Errorf("safetensors: tensor %q: shape %v of %s overflows the byte count", r.name, r.shape, r.dtype)
		}
		if nb != r.end-r.begin {
			return nil, fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, but data_offsets [%d, %d] hold %d", r.name, r.shape, r.dtype, nb, r.begin, r.end, r.end-r.begin)
		}
	}
	sorted := append([]rawTensor(nil), raws...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].begin != sorted[j].begin {
			return sorted[i].begin < sorted[j].begin
		}
		if sorted[i].end != sorted[j].end {
			return sorted[i].end < sorted[j].end
		}
		return sorted[i].name < sorted[j].name
	})
	pos := 0
	prev := ""
	for _, r := range sorted {
		switch {
		case r.begin < pos:
			return nil, fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", r.name, r.begin, r.end, prev, pos)
		case r.begin > pos:
			after := "the start of the data region"
			if prev != "" {
				after = fmt.Sprintf("tensor %q", prev)
			}
			return nil, fmt.Errorf("safetensors: tensor %q begins at %d, leaving a %d-byte gap after %s (expected it to begin at %d: tensors must tile the data region)", r.name, r.begin, r.begin-pos, after, pos)
		}
		pos = r.end
		prev = r.name
	}
	if pos != dataLen {
		return nil, fmt.Errorf("safetensors: the tensors cover %d bytes but the data region has %d (expected no bytes after the last tensor)", pos, dataLen)
	}
	return sorted, nil
}
