#!/usr/bin/env bash
# ctest sample_data: data/sample/ is what tools/make_sample.sh generates
# (byte for byte), and the README's sample commands run on it.
set -euo pipefail
u=${1:?usage: tools/check_sample.sh UNET3D}
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/tools/make_sample.sh" "$u" "$tmp/sample"
diff -r "$root/data/sample/painted" "$tmp/sample/painted"
for f in tubules.tif tubules_truth.tif; do
  cmp "$root/data/sample/$f" "$tmp/sample/$f"
done
s="$root/data/sample"
# densify from the painted slices (a few iterations: a smoke run)
"$u" densify --image "$s/tubules.tif" --annotation-slices "$s/painted" \
    --out "$tmp/dense.tif" --preset tiny --iterations 20 --holdout 0 --quiet
"$u" evaluate --prediction "$tmp/dense.tif" --truth "$s/tubules_truth.tif" \
    >/dev/null
echo "sample_data: data/sample matches tools/make_sample.sh; densify ran"
