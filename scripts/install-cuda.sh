#!/usr/bin/env bash
# install-cuda.sh — install Debian bookworm's CUDA 11.8 toolkit (nvcc, ptxas,
# headers and the libcuda.so link stub) from the non-free component.
#
# This is enough to generate and validate PTX (go generate ./kernels/cuda,
# ptxas -v) and to compile and vet the cuda-tagged Go code, but not to run it:
# there is no GPU or driver here. Idempotent: does nothing when nvcc and ptxas
# are already on PATH. Needs root (or sudo) and the Debian mirror.
#
# Where things land (Debian packages nvidia-cuda-dev / nvidia-cuda-toolkit):
#   nvcc, ptxas           /usr/bin
#   cuda.h                /usr/include/cuda.h
#   libcuda.so (stub)     /usr/lib/x86_64-linux-gnu/stubs/libcuda.so   (see below)
# gorgonia.org/cu links with -lcuda; with the stub directory on the linker path
# the cuda-tagged build links without a driver:
#   export CGO_CFLAGS="-I/usr/include"
#   export CGO_LDFLAGS="-L$(dirname "$(scripts/install-cuda.sh --stub)")"
# (`scripts/install-cuda.sh --stub` prints the stub library path and exits.)
set -euo pipefail

find_stub() {
	local p
	for p in \
		/usr/lib/x86_64-linux-gnu/stubs/libcuda.so \
		/usr/lib/x86_64-linux-gnu/libcuda.so \
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
