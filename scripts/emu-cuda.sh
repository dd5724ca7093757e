#!/usr/bin/env bash
# emu-cuda.sh — run the cuda-tagged tests without a GPU, against a fake
# driver library whose kernels run on the CPU emulator.
#
#   scripts/emu-cuda.sh [-run REGEXP] [package ...]
#
# Builds kernels/cuda/emu/fakecuda.cpp (the driver calls kernels/cuda makes,
# with host memory for device memory and launches on the emulator of emu.h)
# as libcuda.so.1 with the kernel table generated from the PTX entry points,
# builds each package's cuda-tagged test binary (go test -tags cuda -c; needs
# the CUDA headers of scripts/install-cuda.sh), and runs the binary with that
# library first on LD_LIBRARY_PATH. So the real Go side — gorgonia.org/cu,
# the device thread, allocator, launchers and their parameter packing, the
# tensor package's CUDA device, the pipeline on "cuda" — runs end to end on
# the kernels' C++ sources. Timing, PTX and true parallelism are not checked
# (scripts/gpu-check.sh does that on a GPU).
#
# Packages default to the ones with cuda-tagged tests: kernels/cuda (all
# tests), tensor (TestCUDA*) and diffusion/pipeline (TestCUDADemo: the demo
# model's generation on "cuda" against the CPU). -run overrides the test
# selection. Output: one line per package and the failing tests' logs; exit
# status 1 if any test failed. Full logs go to $EMU_CUDA_LOGS if set (a
# folder). Emulated kernels are slow: kernels/cuda's whole suite takes about
# ten minutes here, the golden pipeline test longer; CI runs a quick subset.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
run=""
if [ "${1:-}" = "-run" ]; then
	run=$2
	shift 2
fi
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(kernels/cuda tensor diffusion/pipeline)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -h '^\.visible \.entry' kernels/cuda/ptx/*.ptx |
	sed 's/^\.visible \.entry \([A-Za-z0-9_]*\)(.*/K(\1)/' >"$work/kernel_table.inc"
g++ -std=c++20 -O1 -shared -fPIC -DROENTGO_EMU -I"$work" -o "$work/libcuda.so.1" kernels/cuda/emu/fakecuda.cpp
echo "emu-cuda: fake libcuda.so.1 with $(wc -l <"$work/kernel_table.inc") kernels"
status=0
for p in "${pkgs[@]}"; do
	sel=$run
	if [ -z "$sel" ]; then
		case "$p" in
		kernels/cuda) sel=. ;;
		# The golden test (64x64 through the tiny SD model) takes hours on
		# emulated kernels; the demo comparison takes minutes.
		diffusion/pipeline) sel='^TestCUDADemo' ;;
		*) sel='^TestCUDA' ;;
		esac
	fi
	name=$(echo "$p" | tr / _)
	bin="$work/$name.test"
	log="$work/$name.log"
	if [ -n "${EMU_CUDA_LOGS:-}" ]; then
		mkdir -p "$EMU_CUDA_LOGS"
		log="$EMU_CUDA_LOGS/$name.log"
	fi
	go test -tags cuda -c -o "$bin" "./$p"
	start=$(date +%s)
	if (cd "$p" && LD_LIBRARY_PATH="$work${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin" -test.run "$sel" -test.v -test.timeout 40m) >"$log" 2>&1; then
		echo "ok    $p ($(grep -c -- '--- PASS' "$log") passed, $(($(date +%s) - start)) s)"
	else
		status=1
		echo "FAIL  $p ($(($(date +%s) - start)) s)"
		grep -E -B8 -A4 -- '--- FAIL|^panic:' "$log" | head -n 80
	fi
done
exit $status
