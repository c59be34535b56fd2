#!/usr/bin/env bash
# Installs the Debian 12 packages unet3d needs (through sudo when not root)
# and builds it into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs="build-essential cmake pkg-config ocl-icd-opencl-dev opencl-headers
      libclblast-dev libtiff-dev libpng-dev libcmocka-dev pocl-opencl-icd
      oclgrind clinfo clang libclang-rt-dev openmpi-bin libopenmpi-dev
      libhdf5-dev libnifti2-dev zlib1g-dev libzstd-dev libblosc-dev
      libcjson-dev"
if command -v apt-get >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -q --no-install-recommends $pkgs
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
