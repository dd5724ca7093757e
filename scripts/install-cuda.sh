#!/usr/bin/env bash
# install-cuda.sh — install Debian bookworm's CUDA 11.8 toolkit (nvcc, ptxas,
# headers and the libcuda.so link stub) from the non-free component.
#
# This is enough to generate and validate PTX (go generate ./kernels/cuda,
# ptxas -v) and to compile and vet the cuda-tagged Go code, but not to run it:
# there is no GPU or driver here. Idempotent: does nothing when nvcc and ptxas
# are already on PATH. Needs root (or sudo) and the Debian mirror.
#
# Where things land (Debian bookworm, packages nvidia-cuda-toolkit, nvidia-cuda-dev,
# and libcuda1 which the toolkit pulls in):
#   nvcc, ptxas        /usr/bin
#   cuda.h             /usr/include/cuda.h
#   libcuda.so         /usr/lib/x86_64-linux-gnu/libcuda.so -> (nvidia alternatives)
#                      /usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.535.*
#                      (libcuda1's user-space driver library; without a GPU its cuInit
#                      fails with CUDA_ERROR_NO_DEVICE)
#   link stub          /usr/lib/x86_64-linux-gnu/stubs/libcuda.so
# gorgonia.org/cu's cgo flags already contain -I/usr/include and
# -L/usr/lib/x86_64-linux-gnu, so `go build -tags cuda ./...` needs no CGO_CFLAGS or
# CGO_LDFLAGS here. Where only the stub exists, link against it with
#   export CGO_LDFLAGS="-L$(dirname "$(scripts/install-cuda.sh --stub)")"
# (`scripts/install-cuda.sh --stub` prints the stub path and exits.) The binaries
# load libcuda.so.1 at run time, i.e. the NVIDIA driver of the GPU machine.
set -euo pipefail

find_stub() {
	local p
	for p in \
		/usr/lib/x86_64-linux-gnu/stubs/libcuda.so \
		/usr/lib/cuda/lib64/stubs/libcuda.so \
		/usr/local/cuda/lib64/stubs/libcuda.so; do
		if [ -e "$p" ]; then
			echo "$p"
			return 0
		fi
	done
	p=$(find /usr/lib /usr/local/cuda* -name 'libcuda.so' 2>/dev/null | head -n1 || true)
	if [ -n "$p" ]; then
		echo "$p"
		return 0
	fi
	return 1
}

if [ "${1:-}" = "--stub" ]; then
	find_stub || { echo "install-cuda.sh: libcuda.so stub not found" >&2; exit 1; }
	exit 0
fi

if command -v nvcc >/dev/null 2>&1 && command -v ptxas >/dev/null 2>&1; then
	echo "install-cuda.sh: nvcc and ptxas present: $(nvcc --version | tail -n1)"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
	SUDO="sudo"
fi

src=/etc/apt/sources.list.d/debian.sources
dst=/etc/apt/sources.list.d/debian-nonfree.sources
if [ ! -e "$dst" ]; then
	if [ ! -r "$src" ]; then
		echo "install-cuda.sh: $src not found; expected a Debian bookworm deb822 sources file" >&2
		exit 1
	fi
	# The first stanza of debian.sources (the bookworm one): take its URIs and Signed-By.
	uris=$(awk 'BEGIN{RS=""} NR==1' "$src" | sed -n 's/^URIs:[[:space:]]*//p' | head -n1)
	signed=$(awk 'BEGIN{RS=""} NR==1' "$src" | sed -n 's/^Signed-By:[[:space:]]*//p' | head -n1)
	if [ -z "$uris" ]; then
		echo "install-cuda.sh: no URIs: line in the first stanza of $src" >&2
		exit 1
	fi
	{
		echo "Types: deb"
		echo "URIs: $uris"
		echo "Suites: bookworm bookworm-updates"
		echo "Components: contrib non-free"
		if [ -n "$signed" ]; then
			echo "Signed-By: $signed"
		fi
	} | $SUDO tee "$dst" >/dev/null
	echo "install-cuda.sh: wrote $dst"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends nvidia-cuda-toolkit

echo "install-cuda.sh: $(nvcc --version | tail -n1)"
echo "install-cuda.sh: ptxas: $(command -v ptxas)"
echo "install-cuda.sh: libcuda stub: $(find_stub || echo 'not found')"
echo "install-cuda.sh: libcuda.so: $(readlink -f /usr/lib/x86_64-linux-gnu/libcuda.so 2>/dev/null || echo 'not found')"
