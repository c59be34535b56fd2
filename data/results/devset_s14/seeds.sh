#!/bin/bash
# BraTS fully automatic, 740 iterations, arms default / unw, seeds 2 3
cd /work/runs/s14/dev/runs
U=/work/main/build/unet3d; S=/work/shared/data/brats; D=/work/runs/s14/dev/brats
for seed in 2 3; do
 for arm in default unw; do
  opts=""; [ $arm = unw ] && opts="--class-weights 1,1,1,1,1"
  m=brats-auto-$arm-s$seed
  $U train --image $S/pat0003_image.tif --labels $D/pat0003_sparse555.tif --image $S/pat0004_image.tif --labels $D/pat0004_sparse555.tif --image $S/pat0005_image.tif --labels $D/pat0005_sparse555.tif --model $m.u3d --iterations 740 --classes 5 --seed $seed $opts > $m.out 2> $m.err
  $U predict --model $m.u3d --image $S/pat0006_image.tif --out $m.seg.tif > /dev/null 2>&1
  echo "$arm seed $seed: $($U evaluate --prediction $m.seg.tif --truth $S/pat0006_labels.tif 2>&1 | grep -E '^mean|^[0-4] ' | awk '{printf "%s:%s ", $1, $2}')"
 done
done
