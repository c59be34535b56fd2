#!/usr/bin/env python3
"""Issue #19 acceptance: unet3d's HDF5, NIfTI and OME-Zarr outputs read back
by independent readers (h5py, nibabel, zarr) with the same values, spacing
and, for NIfTI, the input's affine. Not needed to build or test unet3d; run
it from a virtual environment outside the repository:

    python3 -m venv /work/venv-formats
    /work/venv-formats/bin/pip install h5py nibabel zarr numpy
    /work/venv-formats/bin/python tools/check_formats.py [--unet3d build/unet3d]

It trains a tiny model on the nuclei TIFF (20 iterations), predicts the
HDF5 copy of the volume into .h5, .nii.gz and OME-Zarr (labels and
probabilities), densifies BRATS patient 5 (two NIfTI modalities, NIfTI
labels, 2 iterations) into .nii.gz, and checks every file."""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import nibabel as nib
import numpy as np
import zarr

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--unet3d", default=os.path.join(here, "..", "build", "unet3d"))
ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data"))
ap.add_argument("--work", default=None)
a = ap.parse_args()
exe = os.path.abspath(a.unet3d)
data = os.path.abspath(a.data)
work = a.work or tempfile.mkdtemp(prefix="u3d_check_formats_")
os.makedirs(work, exist_ok=True)
tif = f"{data}/nuclei/1135_image.tif"
h5in = f"{data}/formats/nuclei_1135.h5"
F = f"{data}/formats"
failures = 0


def run(*args):
    subprocess.run([exe, *args], check=True, cwd=work,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def check(ok, what):
    global failures
    print(("ok    " if ok else "FAIL  ") + what)
    failures += 0 if ok else 1


def w(name):
    return os.path.join(work, name)


run("train", "--preset", "tiny", "--classes", "2", "--image", tif,
    "--labels", f"{data}/nuclei/1135_labels.tif", "--model", w("tiny.u3d"),
    "--iterations", "20", "--quiet")
for ext in ("h5", "nii.gz", "zarr"):
    run("predict", "--quiet", "--model", w("tiny.u3d"), "--image",
        h5in + ":/raw", "--out", w("seg." + ext), "--probabilities",
        w("prob." + ext))

with h5py.File(h5in, "r") as f:
    raw = f["raw"]
    esz = np.asarray(raw.attrs["element_size_um"], dtype=float)
    shape = raw.shape
print(f"input {h5in}:/raw shape {shape} element_size_um {esz.tolist()}")

# HDF5
with h5py.File(w("seg.h5"), "r") as f:
    seg = f["label"][...]
    check(seg.shape == shape, f"seg.h5:/label shape {seg.shape} dtype {seg.dtype}")
    check(np.allclose(f["label"].attrs["element_size_um"], esz, rtol=1e-12),
          f"seg.h5 element_size_um {list(f['label'].attrs['element_size_um'])}")
with h5py.File(w("prob.h5"), "r") as f:
    prob = f["raw"][...]
    check(prob.shape == (2,) + shape and prob.dtype == np.float32,
          f"prob.h5:/raw shape {prob.shape} dtype {prob.dtype}")
    check(np.allclose(prob.sum(0), 1, atol=1e-4), "prob.h5 sums to 1 over classes")
check(np.array_equal(seg, prob.argmax(0).astype(seg.dtype)),
      "seg.h5 == argmax(prob.h5)")

# OME-Zarr
g = zarr.open_group(w("seg.zarr"), mode="r")
ms = g.attrs["multiscales"][0]
z = g[ms["datasets"][0]["path"]][...]
scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
check(ms["version"] == "0.4" and [x["name"] for x in ms["axes"]] == ["z", "y", "x"],
      f"seg.zarr OME-Zarr {ms['version']} axes {[x['name'] for x in ms['axes']]}")
check(np.array_equal(z, seg), f"seg.zarr level 0 == seg.h5 ({z.dtype})")
check(np.allclose(scale, esz, rtol=1e-12), f"seg.zarr scale {scale}")
check(ms["axes"][0].get("unit") == "micrometer", "seg.zarr unit micrometer")
gp = zarr.open_group(w("prob.zarr"), mode="r")
pz = gp["0"][...]
check(np.array_equal(pz, prob), f"prob.zarr (c,z,y,x) {pz.shape} == prob.h5")

# NIfTI: x, y, z[, t] on disk
n = nib.load(w("seg.nii.gz"))
nz = np.asarray(n.dataobj).transpose(2, 1, 0)
check(np.array_equal(nz, seg), f"seg.nii.gz (x,y,z {n.shape}) == seg.h5 (z,y,x)")
check(np.allclose(n.header.get_zooms()[:3], esz[::-1], rtol=1e-6),
      f"seg.nii.gz zooms {n.header.get_zooms()}")
pn = nib.load(w("prob.nii.gz"))
check(np.array_equal(np.asarray(pn.dataobj).transpose(3, 2, 1, 0), prob),
      f"prob.nii.gz (x,y,z,c {pn.shape}) == prob.h5")

# BRATS: two NIfTI modalities + NIfTI labels; output overlays the input
run("densify", "--preset", "tiny", "--classes", "5", "--image",
    f"{F}/brats_pat0005_flair.nii.gz,{F}/brats_pat0005_t1c.nii.gz",
    "--labels", f"{F}/brats_pat0005_labels.nii.gz", "--out",
    w("brats_dense.nii.gz"), "--iterations", "2", "--quiet")
fl = nib.load(f"{F}/brats_pat0005_flair.nii.gz")
de = nib.load(w("brats_dense.nii.gz"))
check(de.shape == fl.shape, f"brats_dense.nii.gz shape {de.shape} == flair {fl.shape}")
check(np.array_equal(de.affine, fl.affine), "brats_dense.nii.gz affine == flair affine")
check(np.array_equal(de.header.get_qform(), fl.header.get_qform()) and
      np.array_equal(de.header.get_sform(), fl.header.get_sform()) and
      int(de.header["qform_code"]) == int(fl.header["qform_code"]) and
      int(de.header["sform_code"]) == int(fl.header["sform_code"]),
      f"qform/sform and codes kept ({int(fl.header['qform_code'])}, "
      f"{int(fl.header['sform_code'])})")
print("flair affine:\n" + np.array2string(fl.affine, precision=4))

# PlantSeg's Zarr v3 input, for comparison with tests/test_volume_io.c
pz3 = zarr.open_array(f"{F}/plantseg_3d.zarr/raw", mode="r")[...]
print(f"plantseg_3d.zarr/raw (zarr-python): sum {pz3.sum():.6g}, "
      f"[0,0,0] {pz3.flat[0]:.6g}, [-1,-1,-1] {pz3.flat[-1]:.6g}")

print(f"{failures} failure(s); files in {work}")
sys.exit(1 if failures else 0)
