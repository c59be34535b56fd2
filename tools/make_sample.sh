#!/usr/bin/env bash
# Writes the sample volume of data/sample/ (the README's examples):
#   tools/make_sample.sh UNET3D [DIR]     (DIR defaults to data/sample)
# A synthetic tubule volume (unet3d synth, seeded: the same bytes every
# time), its dense truth, and 2,2,2 annotated slices as the PNG label
# images a user paints (unet3d sparsify --png). tests run it into a
# temporary folder and compare with the shipped files, so the shipped
# sample never drifts from what the program generates.
set -euo pipefail
u=${1:?usage: tools/make_sample.sh UNET3D [DIR]}
dir=${2:-"$(dirname "$0")/../data/sample"}
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$u" synth --kind tubules --size 24x64x64 --seed 3 \
    --out "$dir/tubules.tif" --labels "$dir/tubules_truth.tif" >/dev/null
rm -rf "$dir/painted"
"$u" sparsify --labels "$dir/tubules_truth.tif" --slices 2,2,2 \
    --out "$tmp/sparse.tif" --png "$dir/painted" >/dev/null
