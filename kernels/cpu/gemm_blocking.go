package cpu

import "os"

// Cache blocking from the detected caches (Caches), applied once at start-up
// to the assembly micro-kernels; the constants in their definitions remain
// the values for a machine whose caches are unknown. For the AVX-512 kernel
// they are what this rule gives on the Zen 5 core they were measured on (48
// KiB L1d, 1 MiB L2); the AVX2 kernel's KC 256 is what it gives for 32 KiB.
// Sizes count float32s of packed panels (4 bytes each):
//
//   - KC: the micro-panel that stays in L1 across the micro-kernel calls takes
//     half of the L1d: the A micro-panel (MR x KC) for a kernel that runs the
//     A-in-L1 loop order (gemmSerialAL1, l1MaxM > 0), else the B micro-panel
//     (KC x NR); rounded down to a multiple of 64, within [128, 512]. The
//     other half holds the B (or A) micro-panels streaming past it and C.
//   - MC: the A block (MC x KC) in half of the L2, a multiple of MR.
//   - l1NC: in the A-in-L1 order, the B block (KC x l1NC) in half of the L2, a
//     multiple of NR; l1MC, the A block there (l1MC x KC, streamed from L3),
//     in the L3 share of one logical processor, at most l1MaxM.
//   - NC: the B block (KC x NC) in a quarter of one L3 instance (the other
//     cores use the rest), a multiple of NR within [8*NR, 4096].
//
// KC sets the K passes and so the order of the sums: products differ in the
// last bits between machines whose L1d differs (within the tests'
// tolerances), and are bit-identical for a given machine. MC, NC, l1NC and
// l1MC only regroup independent tiles and never change a result.

// The rule is applied only when ROENTGO_GEMM_BLOCKING=cache is set: on the
// Zen 4 machine it was written on it changes KC (384 -> 256) and MC, and
// measurements there were too noisy (a loaded 2-core machine, +-30% between
// runs) to show it is faster; the M=4096, K=320 shapes hinted the old MC was
// better. BenchmarkGemmBlocking compares both on a quiet machine; once it
// shows a gain on AMD and Intel layouts the rule becomes the default.
const blockingEnv = "ROENTGO_GEMM_BLOCKING"

func init() {
	if os.Getenv(blockingEnv) != "cache" {
		return
	}
	ci := Caches()
	if ci.Source == "default" {
		return
	}
	for _, k := range asmKernels() {
		tuneBlocking(k, ci)
	}
}

// tuneBlocking sets k's cache blocks from ci by the rule above.
func tuneBlocking(k *gemmKernel, ci CacheInfo) {
	f := 4 // bytes per packed value
	if k.pairs {
		f = 2 // BF16 pairs: two values a 32-bit word
	}
	resident := k.nr
	if k.l1MaxM > 0 {
		resident = k.mr
	}
	k.kc = min(max(ci.L1D.Size/2/(f*resident)&^63, 128), 512)
	k.mc = max(ci.L2.Size/2/(f*k.kc)/k.mr, 1) * k.mr
	l3 := ci.L3.Size
	if l3 == 0 {
		l3 = ci.L2.Size
	}
	k.nc = min(max(l3/4/(f*k.kc)/k.nr*k.nr, 8*k.nr), 4096)
	if k.l1MaxM > 0 {
		k.l1NC = max(ci.L2.Size/2/(f*k.kc)/k.nr, 1) * k.nr
		share := ci.L3.Share()
		if share == 0 {
			share = ci.L2.Size
		}
		k.l1MC = min(max(share/(f*k.kc)/k.mr, 1)*k.mr, k.l1MaxM)
	}
}
