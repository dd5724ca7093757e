#!/usr/bin/env bash
# Runs the foundation's CPU benchmarks and their yardsticks in one go, writing
# everything to one file: ours (go test -bench) next to numpy/OpenBLAS (matrix
# products) and PyTorch CPU (conv2d, attention), all on this machine in the same run.
#
#   scripts/bench-cpu.sh [out-file]     (default benchmarks/results/cpu-<date>.txt)
#
# Needs Debian's python3-numpy and python3-torch for the yardsticks (skipped if absent);
# with libopenblas0-pthread installed numpy uses OpenBLAS. OpenBLAS is measured twice:
# with its AVX-512 kernel (OPENBLAS_CORETYPE unset) and with the AVX2 one (Haswell).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/cpu-$(date -u +%Y-%m-%d).txt}
mkdir -p "$(dirname "$out")"
py=/usr/bin/python3
{
  echo "# roentgo CPU benchmarks"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "go: $(go version)"
  echo
  echo "## ours: go test -bench (kernels/cpu)"
  go test -run '^$' -bench 'Gemm$|Conv2d|Attention$|GroupNorm|Copy$|CopyParallel|LayerNorm|Softmax$' -benchtime 5x ./kernels/cpu 2>&1
  echo
  if $py -c 'import numpy' 2>/dev/null; then
    echo "## numpy/OpenBLAS, AVX-512 kernel: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $py scripts/bench_numpy_gemm.py"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $py scripts/bench_numpy_gemm.py 2>&1
    echo
    echo "## numpy/OpenBLAS, AVX2 kernel: OPENBLAS_CORETYPE=Haswell $py scripts/bench_numpy_gemm.py"
    OPENBLAS_CORETYPE=Haswell $py scripts/bench_numpy_gemm.py 2>&1
    echo
  fi
  if $py -c 'import torch' 2>/dev/null; then
    echo "## PyTorch CPU: OMP_WAIT_POLICY=PASSIVE $py scripts/bench_torch_conv_attn.py"
    OMP_WAIT_POLICY=PASSIVE $py scripts/bench_torch_conv_attn.py 2>&1
    echo
  fi
  echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
