#!/usr/bin/env bash
# Acceptance check of issue #19: predict gives the same labels whatever
# the input format. Trains a tiny model on the nuclei TIFF (or takes
# MODEL), predicts the TIFF and the same volume as HDF5 (nuclei_1135.h5:/raw),
# writing TIFF, HDF5, NIfTI and OME-Zarr outputs, and compares the decoded
# labels: TIFF outputs byte for byte (cmp); the others after converting
# them to TIFF with `unet3d sparsify --slices 100000,100000,100000` (which
# keeps every voxel) so the same writer encodes them.
#   tools/check_predict_formats.sh [BUILD_DIR] [WORK_DIR] [MODEL]
set -euo pipefail
build=${1:-build}
work=${2:-$(mktemp -d /tmp/u3d_formats_XXXXXX)}
model=${3:-}
exe=$(realpath "$build/unet3d")
data=${U3D_DATA:-$(realpath "$(dirname "$0")/../../shared/data")}
tif=$data/nuclei/1135_image.tif
h5=$data/formats/nuclei_1135.h5
for f in "$tif" "$h5"; do
  [ -e "$f" ] || { echo "skipped: $f absent"; exit 77; }
done
mkdir -p "$work"
cd "$work"
if [ -z "$model" ]; then
  model=$work/tiny.u3d
  "$exe" train --preset tiny --image "$tif" \
    --labels "$data/nuclei/1135_labels.tif" --classes 2 --model "$model" \
    --iterations 20 --quiet
fi
p() { "$exe" predict --quiet --model "$model" "$@"; }
p --image "$tif" --out seg_tif.tif
p --image "$h5:/raw" --out seg_h5.tif
p --image "$h5:/raw" --out seg.h5
p --image "$h5:/raw" --out seg.nii.gz
p --image "$h5:/raw" --out seg.zarr
cmp seg_tif.tif seg_h5.tif
echo "identical: predict of $tif and of $h5:/raw (TIFF outputs, cmp)"
s() { "$exe" sparsify --slices 100000,100000,100000 --labels "$1" --out "$2" >/dev/null; }
s seg_tif.tif ref.tif
for out in seg.h5 seg.nii.gz seg.zarr; do
  s "$out" "back_${out%%.*}_${out#*.}.tif"
  # NIfTI keeps spacing as float32: compare the labels, not the header
  if [ "$out" = seg.nii.gz ]; then
    "$exe" evaluate --prediction "$out" --truth seg_tif.tif --ignore-label none --json > eval_nii.json
    grep -Eq '"fp": \[0(, 0)*\]' eval_nii.json && grep -Eq '"fn": \[0(, 0)*\]' eval_nii.json ||
      { echo "NIfTI output differs:"; cat eval_nii.json; exit 1; }
  else
    cmp ref.tif "back_${out%%.*}_${out#*.}.tif"
  fi
  echo "identical: $out"
done
echo "all outputs identical; files in $work"
