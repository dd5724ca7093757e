#!/usr/bin/env bash
# Times one SD1.5 U-Net training step (forward, epsilon MSE loss, backward,
# AdamW; F32, batch 1, random weights) in roentgo (BenchmarkTrainStep in
# unet/bench_test.go) and in PyTorch CPU (scripts/torch_train_sd15.py), one
# after the other for each case, and prints the speed ratio (torch s/step /
# roentgo s/step: above 1, roentgo is faster) and each side's peak resident
# memory:
#
#   scripts/bench-train.sh [out-file]   (default benchmarks/results/train-<date>.txt)
#
# Environment: THREADS (default 2) for both sides (GOMAXPROCS,
# torch.set_num_threads), SIZES (default "32 64") latent sizes, CKPT
# (default "off on") gradient checkpointing, STEPS (default 3) timed steps
# after one warm-up on each side (roentgo: the benchmark's mean; torch: the
# median), ROENTGO_TRAIN_POOL_LIMIT (bytes; default: no limit) roentgo's
# buffer-pool limit during the steps (2147483648 is the library's default).
# Each case runs in a process of its own on each side, so each peak
# RSS is that case's (the process's VmHWM, model construction included; for
# torch, ru_maxrss). The SD1.5 step needs 14-25 GB (AdamW's moments alone
# are 6.9 GB): run nothing else big beside it. Needs Debian's python3-torch
# for the yardstick (skipped if absent).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/train-$(date -u +%Y-%m-%d).txt}
threads=${THREADS:-2}
sizes=${SIZES:-32 64}
ckpts=${CKPT:-off on}
steps=${STEPS:-3}
mkdir -p "$(dirname "$out")"
py=/usr/bin/python3
have_torch=false
$py -c 'import torch' 2>/dev/null && have_torch=true
bin=$(mktemp -d)/unet.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./unet || exit 1
metric() { # name, benchmark line: the value before " name"
  awk -v m="$1" '{for (i = 2; i <= NF; i++) if ($i == m) print $(i-1)}' <<<"$2"
}
{
  echo "# SD1.5 U-Net training step: roentgo beside PyTorch CPU"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)  cores: $(nproc)  threads: $threads  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)  go: $(go version | cut -d' ' -f3)"
  $have_torch && $py -c 'import torch; print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}")'
  echo
  rows=()
  for size in $sizes; do
    for ck in $ckpts; do
      name="SD15/F32/${size}x${size}/plain"
      flag=""
      if [[ $ck == on ]]; then
        name="SD15/F32/${size}x${size}/checkpointing"
        flag="--checkpointing"
      fi
      line=$(cd unet && GOMAXPROCS=$threads "$bin" -test.run '^$' -test.bench "^BenchmarkTrainStep\$/^${name//\//\$/^}\$" \
        -test.benchtime "${steps}x" 2>&1 | grep -E '^BenchmarkTrainStep' | tail -1)
      echo "roentgo: $line"
      rs=$(metric s/step "$line")
      rm=$(metric peak-RSS-MiB "$line")
      ts="" tm=""
      if $have_torch; then
        tline=$(OMP_WAIT_POLICY=PASSIVE $py scripts/torch_train_sd15.py --size "$size" --threads "$threads" \
          --steps "$steps" $flag 2>&1 | tail -1)
        echo "torch:   $tline"
        ts=$(awk '{for (i = 2; i <= NF; i++) if ($i == "s/step") print $(i-1)}' <<<"$tline" | head -1)
        tm=$(awk '{for (i = 2; i <= NF; i++) if ($i == "peak-RSS-MiB") print $(i-1)}' <<<"$tline")
      fi
      speedup=$(awk -v r="$rs" -v t="$ts" 'BEGIN { if (r > 0 && t > 0) printf "%.2fx", t / r; else print "-" }')
      rows+=("$(printf '%-36s %10s %10s %8s %12s %12s' "$name" "${rs:--}" "${ts:--}" "$speedup" "${rm:--}" "${tm:--}")")
    done
  done
  echo
  echo "## s/step (speedup: torch s/step / roentgo s/step) and peak RSS"
  printf '%-36s %10s %10s %8s %12s %12s\n' case roentgo-s torch-s speedup roentgo-MiB torch-MiB
  printf '%s\n' "${rows[@]}"
  echo
  echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
