// Package safetensors reads and writes the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of UTF-8 JSON, then the raw little-endian tensor data.
//
// The header is one JSON object. The optional key "__metadata__" maps to an
// object of string values; every other key is a tensor name mapping to
//
//	{"dtype": "F32", "shape": [320, 4, 3, 3], "data_offsets": [begin, end]}
//
// with offsets relative to the first byte after the header. Like the reference
// implementation, Parse requires the tensors, taken in offset order, to tile
// the data region exactly: no gaps, no overlaps, and no bytes after the last
// tensor; end-begin must equal the number of elements times the dtype size.
// Writers pad the header with spaces to a multiple of 8 bytes and order the
// tensors by decreasing dtype size (then name), so every tensor is aligned to
// its element size within the file.
//
// Open memory-maps the file read-only (on unix; elsewhere it reads it), so
// opening a multi-gigabyte checkpoint costs only the header parse; the
// tensors' Data slices alias the mapping and are valid until Close. Every
// malformed input returns an error that names the problem, the tensor and what
// was expected; no input makes the package panic.
package safetensors
