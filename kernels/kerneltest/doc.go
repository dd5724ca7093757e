// Package kerneltest is the conformance suite of roentgo's compute kernels. Any
// implementation (the CPU fast paths of kernels/cpu) implements Ops and calls
// Run from a test:
//
//	func TestConformance(t *testing.T) { kerneltest.Run(t, myOps{}, kerneltest.Options{}) }
//
// An accelerator (a kernels.Device: the CUDA device, the tensor package's
// simulated one) gets its Ops from DeviceOps, which uploads the inputs, runs
// the device's kernel and downloads the outputs.
//
// Run drives every op over awkward shapes (sizes 1, 3, 17, 1023; batches; non-square
// and transposed operands; padded strides; packed attention operands; in-place
// calls where the op allows them; F16 and BF16 weights; data with a large mean;
// special values) and compares each result with the naive references of
// kernels/cpu (GemmRef, Conv2dRef, ...) under |got - want| <= atol + rtol*|want|.
// The tolerances of the matrix products scale with the device's compute precision
// (Caps.Compute) and the reduction length; those of the other ops expect float32
// accuracy. A failure prints the maximum absolute and relative differences and the
// first mismatches with their indices (see Compare, which other tests may reuse).
//
// The training kernels (backward ops and the forwards that save statistics) are
// an optional part: an Ops that also implements BackwardOps (RefOps, DeviceOps,
// the CPU fast path's test adapter) has them checked after the forward ops,
// under the names of BackwardNames. Their inputs are rounded to the compute type
// first, and each output element must satisfy |got - want| <= 2u|want| +
// c*max(u, 2^-20)*max|want| with u the unit roundoff of the output's type.
//
// Inputs are deterministic (math/rand/v2 with a fixed seed). The default run takes a
// few seconds; testing.Short() or Options.Short trims the larger shapes.
package kerneltest
