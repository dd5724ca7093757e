// Package npy reads NumPy .npy files (format versions 1.0, 2.0 and 3.0):
// little-endian (or single-byte) float32, float64, float16, int64, int32,
// int8, uint8 and bool arrays in C order.
//
// It is the module's one .npy parser: the tests read golden reference data
// with it, and package metrics (ParseNPY, ParseNPZ, ReadStats) reads user
// feature statistics through it. It is strict — the header must be the
// dictionary numpy writes, with exactly the keys descr, fortran_order and
// shape, and the data exactly as long as the shape says — errors say what
// was expected, and no input makes it panic (fuzzed here and in metrics).
package npy
