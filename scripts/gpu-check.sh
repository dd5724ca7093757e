#!/usr/bin/env bash
# gpu-check.sh — build the CUDA test binaries here, run them on a GPU machine.
#
#   scripts/gpu-check.sh build   (this machine: Go, CUDA 11.8 headers, no GPU)
#       Compiles every package's cuda-tagged tests into stripped test binaries
#       (go test -tags cuda -c -ldflags='-s -w') and copies them, with this
#       script and scripts/bench_torch_gpu.py, into .gpu/ at the repository root
#       (ignored by git through .git/info/exclude; must stay under 64 MiB).
#
#   scripts/gpu-check.sh run     (GPU machine: NVIDIA driver, PyTorch, no Go)
#       From the repository root with .gpu/ present: runs each binary's tests
#       (the kerneltest conformance suite on the device, the tensor-core tests),
#       then its benchmarks, then bench_torch_gpu.py on the same shapes, and
#       prints ours/torch ratios. The tensor and pipeline binaries run their
#       TestCUDA* tests (the tensor ops on cuda:0 against the CPU; the golden
#       tiny-model txt2img on the GPU against diffusers', carried in
#       .gpu/golden); the benchmarks binary its BenchmarkCUDA* (SD1.5 U-Net
#       step at batch 2 64x64, 512x512 20-step txt2img). Output goes to $OUT (default ./gpu-out):
#       env.txt, test-<pkg>.txt, bench-<pkg>.txt, torch.txt, summary.txt.
#       Under 10 minutes in all (per-step timeouts below). Exit status is
#       non-zero if a test failed.
#
# One device call does it (see benchmarks/results/README.md):
#   run(command="bash scripts/gpu-check.sh run", carry=[".gpu"], timeout_s=600)
set -uo pipefail

mode=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

build() {
	set -e
	command -v go >/dev/null || { echo "gpu-check: go not on PATH" >&2; exit 1; }
	if ! [ -e /usr/include/cuda.h ] && ! [ -e /usr/local/cuda/include/cuda.h ]; then
		echo "gpu-check: cuda.h not found; run scripts/install-cuda.sh first" >&2
		exit 1
	fi
	rm -rf .gpu
	mkdir -p .gpu
	# Packages with test files that carry the cuda build constraint.
	pkgs=$(go list -tags cuda -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
		while read -r ip dir files; do
			for f in $files; do
				if grep -qE '^//go:build .*\bcuda\b' "$dir/$f" && ! grep -qE '^//go:build .*!cuda' "$dir/$f"; then
					echo "$ip"
					break
				fi
			done
		done)
	if [ -z "$pkgs" ]; then
		echo "gpu-check: no cuda-tagged tests found" >&2
		exit 1
	fi
	mod=$(go list -m)
	for p in $pkgs; do
		rel=${p#"$mod"/}
		name=$(echo "$rel" | tr '/' '_')
		echo "gpu-check: building $rel -> .gpu/$name.test"
		go test -tags cuda -c -trimpath -ldflags='-s -w' -o ".gpu/$name.test" "./$rel"
		echo "$name $rel" >>.gpu/packages.txt
	done
	cp scripts/bench_torch_gpu.py scripts/torch_unet_sd15.py scripts/gpu-check.sh .gpu/
	# The golden tiny model and the outputs the CUDA pipeline test compares
	# with (read through ROENTGO_GOLDEN_DIR on the GPU machine).
	golden="$root/../shared/golden/tiny-sd1"
	if [ -d "$golden" ]; then
		mkdir -p .gpu/golden/tiny-sd1/txt2img .gpu/golden/tiny-sd1/model
		cp "$golden/case.json" .gpu/golden/tiny-sd1/
		cp -r "$golden/model/diffusers" .gpu/golden/tiny-sd1/model/
		cp -r "$golden/txt2img/ddim_4steps" .gpu/golden/tiny-sd1/txt2img/
	else
		echo "gpu-check: $golden not found: the CUDA pipeline test will skip" >&2
	fi
	{
		echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
		echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "go: $(go version)"
		echo "nvcc: $(nvcc --version 2>/dev/null | tail -n1 || echo none)"
	} >.gpu/BUILD.txt
	# .gpu is local build output: keep git from seeing it.
	ex="$(git rev-parse --git-path info/exclude 2>/dev/null || true)"
	if [ -n "$ex" ] && ! grep -qxF '.gpu/' "$ex" 2>/dev/null; then
		mkdir -p "$(dirname "$ex")"
		echo '.gpu/' >>"$ex"
	fi
	# Compressed for the trip (the carried folder must stay under 64 MiB);
	# run unpacks them.
	gzip -9 .gpu/*.test
	size=$(du -sk .gpu | cut -f1)
	echo "gpu-check: .gpu is ${size} KiB"
	ls -l .gpu
	if [ "$size" -ge $((64 * 1024)) ]; then
		echo "gpu-check: .gpu exceeds 64 MiB" >&2
		exit 1
	fi
}

run() {
	OUT=${OUT:-$root/gpu-out}
	mkdir -p "$OUT"
	if ! [ -f .gpu/packages.txt ]; then
		echo "gpu-check: .gpu/packages.txt missing; run 'scripts/gpu-check.sh build' first and carry .gpu" >&2
		exit 1
	fi
	py=python3
	command -v "$py" >/dev/null || py=python
	{
		echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		cat .gpu/BUILD.txt
		nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "nvidia-smi failed"
		nvidia-smi 2>&1 | sed -n '1,4p'
		"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
		uname -a
		ldd --version 2>&1 | head -n1
	} | tee "$OUT/env.txt"
	for z in .gpu/*.test.gz; do
		[ -e "$z" ] && gunzip -f "$z"
	done
	status=0
	[ -d "$root/.gpu/golden/tiny-sd1" ] && export ROENTGO_GOLDEN_DIR="$root/.gpu/golden/tiny-sd1"
	while read -r name rel; do
		bin="$root/.gpu/$name.test"
		chmod +x "$bin" 2>/dev/null || true
		dir="$root/$rel"
		[ -d "$dir" ] || dir="$root"
		# Which tests and benchmarks of each binary run here, and their time
		# limits (seconds): the binaries also hold the CPU tests, which CI runs.
		# The limits add up to under 9 minutes with the torch yardstick.
		case "$rel" in
		kernels/cuda) trun='.' tlim=110 brun='.' blim=110 ;;
		benchmarks) trun='' tlim=0 brun='CUDA' blim=120 ;;
		diffusion/pipeline) trun='^TestCUDA' tlim=60 brun='' blim=0 ;;
		*) trun='^TestCUDA' tlim=40 brun='^BenchmarkCUDA' blim=40 ;;
		esac
		if [ -z "$trun" ]; then
			echo "== no tests run from $rel"
		else
		echo "== tests: $rel (-test.run '$trun', ${tlim}s)"
		(cd "$dir" && timeout "$tlim" "$bin" -test.v -test.count=1 -test.run "$trun" -test.timeout=$((tlim - 5))s) >"$OUT/test-$name.txt" 2>&1
		rc=$?
		if [ $rc -ne 0 ]; then
			status=1
			echo "gpu-check: tests of $rel failed (exit $rc); see test-$name.txt"
			ldd "$bin" 2>&1 | grep -i 'not found' && echo "gpu-check: missing shared libraries for $bin"
			tail -n 15 "$OUT/test-$name.txt"
		fi
		grep -E '^(--- FAIL|FAIL|ok|PASS|panic:|cuda tests:)' "$OUT/test-$name.txt" | head -n 40
		grep -c -- '--- PASS' "$OUT/test-$name.txt" | sed 's/^/passed subtests: /'
		fi
		[ -z "$brun" ] && continue
		echo "== benchmarks: $rel (-test.bench '$brun', ${blim}s)"
		(cd "$dir" && timeout "$blim" "$bin" -test.run '^$' -test.bench "$brun" -test.benchtime 1s -test.timeout=$((blim - 5))s) \
			>"$OUT/bench-$name.txt" 2>&1 || {
			status=1
			echo "gpu-check: benchmarks of $rel failed"
			tail -n 5 "$OUT/bench-$name.txt"
		}
		grep -E '^(Benchmark|cuda tests:|FAIL|panic:)' "$OUT/bench-$name.txt"
	done <.gpu/packages.txt
	echo "== torch"
	benches=$(ls "$OUT"/bench-*.txt 2>/dev/null | tr '\n' ' ')
	timeout 110 "$py" .gpu/bench_torch_gpu.py --go-bench $benches 2>&1 | tee "$OUT/torch.txt"
	grep -A100 '^ours/torch' "$OUT/torch.txt" >"$OUT/summary.txt" 2>/dev/null || true
	echo "gpu-check: results in $OUT (exit $status)"
	exit $status
}

case "$mode" in
build) build ;;
run) run ;;
*)
	echo "usage: scripts/gpu-check.sh build|run" >&2
	exit 2
	;;
esac
