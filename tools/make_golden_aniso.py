#!/usr/bin/env python3
"""PyTorch fixtures for the anisotropic ops (issue #20): 1x3x3 conv3d,
1x2x2 max-pool and 1x2x2 transposed conv, forward and backward.

Writes one folder per case into the golden directory (default
../shared/golden next to the repository), in the format of the existing
cases (see that folder's README.md): case.txt plus NAME.npy, computed in
double precision from float32 inputs and stored as float32. Per-axis sizes
are written D,H,W: `kernel 1,3,3`, `padding 0,1,1`, `stride 1,2,2`.

    python3 tools/make_golden_aniso.py [--out DIR] [--seed S]
    python3 tools/make_golden_aniso.py --counts

--counts prints PyTorch's parameter counts of the anisotropic networks
that tests/test_cli_options.c (info_anisotropic) checks, instead.

Needs torch and numpy. Deterministic for a seed: the inputs come from
numpy's PCG64 generator, rounded to float32 before PyTorch sees them, so
the stored inputs are exactly what the reference was computed from.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def f32(rng, *shape):
    """Uniform [-1, 1) values, float32-exact, as float64 tensors."""
    a = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    return torch.from_numpy(a.astype(np.float64))


def save(folder, lines, tensors):
    os.makedirs(folder, exist_ok=True)
    for name, t in tensors.items():
        a = t.detach().cpu().numpy().astype(np.float32)
        np.save(os.path.join(folder, name + ".npy"), np.ascontiguousarray(a))
    with open(os.path.join(folder, "case.txt"), "w") as f:
        for k, v in lines:
            f.write(f"{k} {v}\n")
        f.write("tensors " + " ".join(sorted(tensors)) + "\n")


def axes(v):
    return ",".join(str(i) for i in v)


def conv_case(out, name, rng, n, cin, cout, dhw, k, pad, bias):
    x = f32(rng, n, cin, *dhw).requires_grad_()
    w = f32(rng, cout, cin, *k).requires_grad_()
    b = f32(rng, cout).requires_grad_() if bias else None
    y = F.conv3d(x, w, b, stride=1, padding=tuple(pad))
    dy = f32(rng, *y.shape)
    y.backward(dy)
    t = {"x": x, "w": w, "y": y, "dy": dy, "dx": x.grad, "dw": w.grad}
    if bias:  # stored (Cout,) as the cubic cases
        t["b"] = b
        t["db"] = b.grad
    save(os.path.join(out, name),
         [("op", "conv3d"), ("kernel", axes(k)), ("stride", 1),
          ("padding", axes(pad)), ("bias", int(bias)),
          ("note", "anisotropic kernel, sizes per axis D,H,W")], t)


def pool_case(out, name, rng, n, c, dhw, f):
    # distinct values: no ties, so the routing of dx is unambiguous
    count = n * c * int(np.prod(dhw))
    vals = (rng.permutation(count).astype(np.float64) - count / 2) / 64.0
    x = torch.from_numpy(vals.astype(np.float32).astype(np.float64))
    x = x.reshape(n, c, *dhw).requires_grad_()
    y = F.max_pool3d(x, kernel_size=tuple(f), stride=tuple(f))
    dy = f32(rng, *y.shape)
    y.backward(dy)
    save(os.path.join(out, name),
         [("op", "maxpool3d"), ("kernel", axes(f)), ("stride", axes(f)),
          ("note", "floor mode: trailing odd voxels are dropped; window per "
                   "axis D,H,W")],
         {"x": x, "y": y, "dy": dy, "dx": x.grad})


def upconv_case(out, name, rng, n, cin, cout, dhw, f, bias):
    x = f32(rng, n, cin, *dhw).requires_grad_()
    w = f32(rng, cin, cout, *f).requires_grad_()
    b = f32(rng, cout).requires_grad_() if bias else None
    y = F.conv_transpose3d(x, w, b, stride=tuple(f))
    dy = f32(rng, *y.shape)
    y.backward(dy)
    t = {"x": x, "w": w, "y": y, "dy": dy, "dx": x.grad, "dw": w.grad}
    if bias:
        t["b"] = b
        t["db"] = b.grad
    save(os.path.join(out, name),
         [("op", "conv_transpose3d"), ("kernel", axes(f)),
          ("stride", axes(f)), ("bias", int(bias)),
          ("weight_layout", "Cin,Cout,kD,kH,kW")], t)


def unet_params(levels, f, cin, classes, kernels, pools, bn_affine):
    """Learnable parameters of the U-Net of the golden README's layout
    with per-level kernels (levels entries) and pools (levels-1)."""
    import torch.nn as nn
    mods = []

    def conv(ci, co, k):
        mods.append(nn.Conv3d(ci, co, k))
        mods.append(nn.BatchNorm3d(co, affine=bn_affine))

    for lv in range(levels):
        c0 = cin if lv == 0 else f << lv
        conv(c0, f << lv, kernels[lv])
        conv(f << lv, f << (lv + 1), kernels[lv])
    for j in range(levels - 1):
        m = levels - 2 - j
        s, up = f << (m + 1), f << (m + 2)
        mods.append(nn.ConvTranspose3d(up, up, pools[m], stride=pools[m],
                                       bias=False))
        conv(s + up, s, kernels[m])
        conv(s, s, kernels[m])
    mods.append(nn.Conv3d(2 * f, classes, 1))
    return sum(p.numel() for mo in mods for p in mo.parameters())


def print_counts():
    flat, iso = (1, 3, 3), (3, 3, 3)
    rows = [("info --preset small --dims 2", (3, 8, 1, 2, [flat] * 3,
                                               [(1, 2, 2)] * 2)),
            ("info --preset tiny --kernels 1x3x3,3x3x3,3x3x3 "
             "--pools 1x2x2,2x2x2", (3, 4, 2, 3, [flat, iso, iso],
                                     [(1, 2, 2), (2, 2, 2)])),
            ("info --preset paper", (4, 32, 3, 3, [iso] * 4,
                                     [(2, 2, 2)] * 3))]
    for name, a in rows:
        print(f"{name}: {unet_params(*a, False)} "
              f"(with BN gamma/beta {unet_params(*a, True)})")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "shared",
                                                  "golden"))
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--counts", action="store_true",
                    help="print the networks' parameter counts instead")
    a = ap.parse_args()
    if a.counts:
        print_counts()
        return
    torch.set_default_dtype(torch.float64)
    rng = np.random.Generator(np.random.PCG64(a.seed))
    out = os.path.normpath(a.out)
    conv_case(out, "conv3d_1x3x3_same", rng, 2, 3, 4, (3, 5, 6),
              (1, 3, 3), (0, 1, 1), True)
    conv_case(out, "conv3d_1x3x3_valid", rng, 1, 2, 3, (2, 6, 7),
              (1, 3, 3), (0, 0, 0), False)
    pool_case(out, "maxpool3d_1x2x2", rng, 2, 3, (3, 5, 7), (1, 2, 2))
    upconv_case(out, "upconv3d_1x2x2_bias", rng, 2, 3, 4, (2, 3, 4),
                (1, 2, 2), True)
    upconv_case(out, "upconv3d_1x2x2_nobias", rng, 1, 2, 3, (3, 2, 3),
                (1, 2, 2), False)
    print("wrote 5 cases to", out, file=sys.stderr)


if __name__ == "__main__":
    main()
