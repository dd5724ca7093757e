package cpu

// SetVecAsmForTest switches the assembly kernels of the normalisations,
// activations, pooling and per-channel affine maps on or off (on only where the machine has them) and returns the
// previous setting; for the external conformance test.
func SetVecAsmForTest(on bool) (prev bool) {
	prev = vecAsm
	vecAsm = on && vecAsmAvail
	return prev
}
