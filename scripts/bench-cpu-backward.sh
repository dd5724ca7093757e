#!/usr/bin/env bash
# Runs the CPU backward-kernel benchmarks (convolution data/weight gradients,
# attention backward; each beside its forward) and PyTorch CPU doing the same,
# in one go on this machine, writing everything to one file:
#
#   scripts/bench-cpu-backward.sh [out-file]   (default benchmarks/results/cpu-backward-<date>.txt)
#
# Environment: THREADS (default 2) for both sides (GOMAXPROCS and
# torch.set_num_threads), COUNT (default 2) runs of each Go benchmark,
# MIN_TIME (default 1) seconds per PyTorch case, ONLY (default all) a substring
# of the case names. Needs Debian's python3-torch for the yardstick (skipped if
# absent; its matrix products (attention) run on the system BLAS: install
# libopenblas0-pthread, or they run on the reference BLAS at a few GFLOP/s). Conv and attention alternate between the two sides, so that load
# from elsewhere on a shared machine hits both alike.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/cpu-backward-$(date -u +%Y-%m-%d).txt}
threads=${THREADS:-2}
count=${COUNT:-2}
min_time=${MIN_TIME:-1}
only=${ONLY:-}
mkdir -p "$(dirname "$out")"
py=/usr/bin/python3
gobench() {
  GOMAXPROCS=$threads go test -run '^$' -bench "$1" -benchtime 3x -count "$count" ./kernels/cpu 2>&1 |
    grep -E "^Benchmark.*${only}" || true
}
torch() {
  if $py -c 'import torch' 2>/dev/null; then
    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$threads $py scripts/bench_torch_backward.py --threads "$threads" --min-time "$min_time" \
      --only "$only" --kind "$1" 2>&1
  else
    echo "(python3-torch not installed: no yardstick)"
  fi
}
{
  echo "# roentgo CPU backward kernels beside PyTorch"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)  cores: $(nproc)  threads: $threads  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "go: $(go version)"
  echo
  echo "## ours: go test -bench 'Conv2dBackward\$' (GFLOP/s = 2*N*K*OH*OW*C*R*S / time, for all three)"
  gobench 'Conv2dBackward$'
  echo
  echo "## PyTorch: scripts/bench_torch_backward.py --kind conv"
  torch conv
  echo
  echo "## ours: go test -bench 'AttentionBackward\$' (GFLOP/s: backward 2.5*4*B*H*Sq*Sk*D / time, forward 4*B*H*Sq*Sk*D / time)"
  gobench 'AttentionBackward$'
  echo
  echo "## PyTorch: scripts/bench_torch_backward.py --kind attn"
  torch attn
  echo
  echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
