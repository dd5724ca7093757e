// Package rng is a CPU random number generator that reproduces PyTorch's
// torch.Generator("cpu") bit for bit, so that a seed gives the same initial
// latents as diffusers does with torch.Generator().manual_seed(seed).
//
// The engine is the 32-bit Mersenne Twister (mt19937) seeded with the low 32
// bits of the seed by the standard recurrence
//
//	state[0] = uint32(seed)
//	state[i] = 1812433253*(state[i-1] ^ state[i-1]>>30) + i
//
// Uint32 is one engine draw; Uint64 is two draws, the first in the high word.
//
// Uniform floats use the low 24 bits of one draw: u = (r & (1<<24-1)) * 2^-24
// (exact), mapped to [from, to) as fma(u, to-from, from) in float32 with to-from
// rounded to float32 (torch's uniform_ and rand on a float32 tensor).
//
// Normal reproduces torch's normal_ (and so torch.randn) on a contiguous float32
// tensor of n elements, as computed by PyTorch 1.13 on an x86-64 CPU (the AVX2
// kernel, which torch also uses on AVX-512 machines):
//
//   - n >= 16: fill all n elements with uniforms u[i]; then for every full
//     block of 16, pair element j with j+8 (j < 8) and apply Box-Muller in
//     float32: radius = sqrt(-2*log(1-u[j])), theta = float32(2*pi)*u[j+8],
//     out[j] = radius*cos(theta), out[j+8] = radius*sin(theta), each then
//     fma(out, std, mean). If n%16 != 0, 16 fresh uniforms are drawn into the
//     last 16 elements and that block is transformed again (overwriting part of
//     the previous block). log, sin and cos are the single-precision Cephes
//     polynomials of avx_mathfun.h, evaluated with the same float32 operations
//     and fused multiply-adds as torch's compiled kernel (see mathfun.go).
//   - n < 16: each element is one sample of a float64 Box-Muller: two float64
//     uniforms from 53-bit draws (u1 first), r = sqrt(-2*log(1-u2)),
//     theta = 2*pi*u1; the sample is r*cos(theta) and r*sin(theta) is cached in
//     the generator and returned by the next small-n sample (torch's
//     next_double_normal_sample). The float64 result times std plus mean is
//     rounded to float32 (the mean and std enter one float64 fused
//     multiply-add). Seeding clears the cache; the large-n path neither reads
//     nor clears it.
//
// These details were read from the disassembly of Debian's libtorch_cpu 1.13
// (its AVX2 normal kernel, the float uniform loop and the scalar double path)
// and are checked against torch's output: scripts/gen_rng_testdata.py writes
// the test data (bit-exact comparisons, including torch.randn((1,4,64,64)) and
// (1,4,128,128) by SHA-256), and over 33 million further samples matched bit
// for bit when the package was written. The scalar path (n < 16) calls Go's
// math.Log and math.Sincos where torch calls glibc's log and sincos; the two
// can differ in the last bit of a float64, which changes the float32 result
// only with probability around 2^-29 per sample.
//
// A Generator is not safe for concurrent use.
package rng
