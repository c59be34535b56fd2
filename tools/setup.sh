#!/usr/bin/env bash
# Installs the Debian 12 packages unet3d needs and builds it into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends \
    build-essential cmake pkg-config ocl-icd-opencl-dev opencl-headers \
    libclblast-dev libtiff-dev libpng-dev libcmocka-dev pocl-opencl-icd \
    oclgrind clinfo
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
