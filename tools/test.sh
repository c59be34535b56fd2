#!/usr/bin/env bash
# The full test suite:
#  1. release build (with the cuDNN backend when CUDA + cuDNN are installed,
#     with MPI when found) and every ctest: PoCL ("unit"), oclgrind
#     ("oclgrind"), fixtures, the multi-process tests ("mpi", under mpirun);
#     then the installed tree (tools/check_install.sh);
#  2. the OpenCL-only build (-DUNET3D_CUDNN=OFF -DUNET3D_MPI=OFF) and its
#     fixture run;
#  3. an ASan/UBSan build running the unit tests;
#  4. the libFuzzer harnesses of the file readers, 30 s each (tools/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
golden=../shared/golden
# the program binary cache stays inside the build tree
export UNET3D_CACHE_DIR="$PWD/build/kernel-cache"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
# cmake --install into a temporary prefix; an example program built
# against it with pkg-config and with find_package(unet3d), C and C++
tools/check_install.sh build

cmake -S . -B build-nocuda -DCMAKE_BUILD_TYPE=Release -DUNET3D_CUDNN=OFF \
      -DUNET3D_MPI=OFF -DUNET3D_TESTS=OFF >/dev/null
cmake --build build-nocuda -j"$jobs"
if [ -d "$golden" ]; then
  build-nocuda/unet3d golden "$golden" data/golden
else
  build-nocuda/unet3d golden data/golden
fi

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DUNET3D_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
# PoCL's LLVM JIT allocations are not ours: leak checks off, other checks on.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# test_predict's volumes take ~9 minutes under ASan: its small shapes (as
# under oclgrind) run the same code paths
(cd build-asan && ctest --output-on-failure -j"$jobs" -L unit -E '^test_predict$' &&
 UNET3D_TEST_SMALL=1 ctest --output-on-failure -R '^test_predict$')

# fuzz.sh sets its own sanitizer options (leak checks on: no OpenCL there);
# 30 s per reader keeps CI near its 30-minute budget
tools/fuzz.sh 30
