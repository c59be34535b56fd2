#!/usr/bin/env bash
# Installs build/ into a temporary prefix (cmake --install) and builds
# tests/install_example against it twice: with pkg-config (C, shared
# library) and with CMake (find_package(unet3d): unet3d::unet3d,
# unet3d::unet3d_static, and a C++ program including every public header),
# then runs them. Checks the files installed, the SONAME and that the
# kernels are inside the library (no cl/ folder installed).
#   tools/check_install.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tmp=$(mktemp -d /tmp/u3d_install_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libunet3d.so -print -quit)")
for f in "$prefix/bin/unet3d" "$libdir/libunet3d.a" "$libdir/libunet3d.so" \
         "$prefix/include/unet3d/unet3d.h" "$prefix/include/unet3d/volume_io.h" \
         "$libdir/pkgconfig/unet3d.pc" "$libdir/cmake/unet3d/unet3dConfig.cmake"; do
  [ -e "$f" ] || { echo "check_install: missing $f"; exit 1; }
done
soname=$(objdump -p "$libdir/libunet3d.so" | awk '/SONAME/ {print $2}')
case $soname in libunet3d.so.[0-9]*) ;; *) echo "check_install: SONAME '$soname'"; exit 1 ;; esac
echo "installed into $prefix: unet3d, libunet3d.a, libunet3d.so ($soname), headers, unet3d.pc, CMake package"
mkdir -p "$tmp/run"
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# pkg-config
PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
cc -std=c11 -Wall -Wextra -Werror tests/install_example/example.c \
   $(pkg-config --cflags --libs unet3d) -o "$tmp/example_pc"
"$tmp/example_pc" "$tmp/run" | sed 's/^/  pkg-config: /'
# CMake
cmake -S tests/install_example -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/ex" >/dev/null
for x in example example_static; do
  "$tmp/ex/$x" "$tmp/run" | sed "s/^/  cmake $x: /"
done
"$tmp/ex/example_cxx" | sed 's/^/  cmake /'
"$prefix/bin/unet3d" info --preset tiny | head -1 | sed 's/^/  installed program: /'
echo "check_install: ok"
