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
#       prints ours/torch ratios. Output goes to $OUT (default ./gpu-out):
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
	cp scripts/bench_torch_gpu.py scripts/gpu-check.sh .gpu/
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
	status=0
	while read -r name rel; do
		bin="$root/.gpu/$name.test"
		chmod +x "$bin" 2>/dev/null || true
		dir="$root/$rel"
		[ -d "$dir" ] || dir="$root"
		echo "== tests: $rel"
		(cd "$dir" && timeout 200 "$bin" -test.v -test.count=1 -test.timeout=190s) >"$OUT/test-$name.txt" 2>&1
		rc=$?
		if [ $rc -ne 0 ]; then
			status=1
			echo "gpu-check: tests of $rel failed (exit $rc); see test-$name.txt"
			ldd "$bin" 2>&1 | grep -i 'not found' && echo "gpu-check: missing shared libraries for $bin"
			tail -n 15 "$OUT/test-$name.txt"
		fi
		grep -E '^(--- FAIL|FAIL|ok|PASS|panic:|cuda tests:)' "$OUT/test-$name.txt" | head -n 40
		grep -c -- '--- PASS' "$OUT/test-$name.txt" | sed 's/^/passed subtests: /'
		echo "== benchmarks: $rel"
		(cd "$dir" && timeout 200 "$bin" -test.run '^$' -test.bench . -test.benchtime 1s -test.timeout=190s) \
			>"$OUT/bench-$name.txt" 2>&1 || {
			status=1
			echo "gpu-check: benchmarks of $rel failed"
			tail -n 5 "$OUT/bench-$name.txt"
		}
		grep -E '^(Benchmark|cuda tests:|FAIL|panic:)' "$OUT/bench-$name.txt"
	done <.gpu/packages.txt
	echo "== torch"
	benches=$(ls "$OUT"/bench-*.txt 2>/dev/null | tr '\n' ' ')
	timeout 150 "$py" .gpu/bench_torch_gpu.py --go-bench $benches 2>&1 | tee "$OUT/torch.txt"
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
