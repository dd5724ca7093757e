#!/usr/bin/env bash
# Frechet distance on 2048-d statistics: scipy (pytorch-fid's steps) beside
# package metrics (Schur method as scipy, and the symmetric-eigenvalue
# method), on the same statistics, in one run. Needs /usr/bin/python3 with
# numpy and scipy. Usage: scripts/bench_frechet.sh [N] [D]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 scripts/bench_frechet.py "$dir" "${1:-5000}" "${2:-2048}"
METRICS_BENCH_STATS="$dir" go test ./metrics -run '^$' -bench 'FrechetFiles' -benchtime 1x -timeout 30m -v
