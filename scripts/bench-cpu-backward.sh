#!/usr/bin/env bash
# Runs the CPU backward-kernel benchmarks (convolution data/weight gradients,
# attention backward; each beside its forward) and PyTorch CPU doing the same,
# case by case on this machine (ours, then PyTorch's, for each shape, so that
# load from elsewhere on a shared machine hits both sides of a comparison
# alike), writing everything to one file:
#
#   scripts/bench-cpu-backward.sh [out-file]   (default benchmarks/results/cpu-backward-<date>.txt)
#
# Environment: THREADS (default 2) for both sides (GOMAXPROCS,
# torch.set_num_threads, OPENBLAS_NUM_THREADS), COUNT (default 2) runs of each
# Go benchmark, MIN_TIME (default 1) seconds per PyTorch case, ONLY (default
# all) a substring of the case names. Needs Debian's python3-torch for the
# yardstick (skipped if absent); its attention runs on torch's matrix products
# over the system BLAS: install libopenblas0-pthread, else they run on the
# reference BLAS at a few GFLOP/s.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/cpu-backward-$(date -u +%Y-%m-%d).txt}
threads=${THREADS:-2}
count=${COUNT:-2}
min_time=${MIN_TIME:-1}
only=${ONLY:-}
mkdir -p "$(dirname "$out")"
py=/usr/bin/python3
have_torch=false
$py -c 'import torch' 2>/dev/null && have_torch=true
# The shapes both sides measure (kernels/cpu/conv_attn_backward_bench_test.go,
# scripts/bench_torch_backward.py).
conv_cases="unet3x3_N2_320to320_64x64 down3x3s2_N2_320to320_64x64 shortcut1x1_N2_320to640_32x32
  unet3x3_N2_640to640_32x32 unet3x3_N2_1280to1280_16x16 unet3x3_N2_1280to1280_8x8 unet3x3_N2_1280to1280_4x4"
attn_cases="self_B2_H8_S4096_D40 cross_B2_H8_S4096x77_D40 self_B2_H8_S1024_D80 self_B2_H8_S256_D160
  self_B2_H5_S4096_D64 vae_B1_H1_S1024_D512 vae_B1_H1_S4096_D512"
run_case() { # kind (conv|attn), Go benchmark, case name
  GOMAXPROCS=$threads go test -run '^$' -bench "$2\$/^$3\$/" -benchtime 3x -count "$count" ./kernels/cpu 2>&1 |
    grep -E '^Benchmark' || true
  if $have_torch; then
    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$threads $py scripts/bench_torch_backward.py \
      --threads "$threads" --min-time "$min_time" --only "$3" --kind "$1" --quiet 2>&1
  fi
}
{
  echo "# roentgo CPU backward kernels beside PyTorch"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)  cores: $(nproc)  threads: $threads  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "go: $(go version)"
  if $have_torch; then
    $py -c 'import torch; print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}")'
    echo "blas: $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null)"
  else
    echo "(python3-torch not installed: no yardstick)"
  fi
  echo
  echo "## convolution: GFLOP/s = 2*N*K*OH*OW*C*R*S / time for the forward and both gradients"
  for c in $conv_cases; do
    [[ $c == *"$only"* ]] && run_case conv 'Conv2dBackward' "$c"
  done
  echo
  echo "## attention: GFLOP/s = 2.5*4*B*H*Sq*Sk*D / time for the backward, 4*B*H*Sq*Sk*D / time for the forward"
  for c in $attn_cases; do
    [[ $c == *"$only"* ]] && run_case attn 'AttentionBackward' "$c"
  done
  echo
  echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
