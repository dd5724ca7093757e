// Package npy reads NumPy .npy files (format versions 1, 2 and 3), as used by
// the golden reference data of the tests: little-endian (or single-byte)
// float32, float64, int64, int32, uint8 and bool arrays in C order.
//
// It is a test helper for the whole module: errors name the file and what was
// expected, and no input makes it panic.
package npy
