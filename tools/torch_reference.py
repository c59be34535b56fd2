#!/usr/bin/env python3
"""A plain PyTorch 3D U-Net: the reference for unet3d's accuracy (issue #15).

What it is: what a user would get from an ordinary PyTorch U-Net, trained in
the same wall time on the same sparse labels, to put next to
  * `unet3d densify` (semi-automatic: train on the few annotated slices of one
    volume, segment that volume): one --image/--labels pair and --out;
  * `unet3d train` + `predict` (fully automatic: train on the sparse labels of
    several volumes, segment a new one): --image/--labels pairs,
    --predict-image and --out.
It is used for comparisons only: nothing in the build or the tests runs it.

Why these choices (a "plain" setup, the first one a PyTorch user would write,
not a tuned one):
  * the network is unet3d's (tools/compare_peers.py: torch_unet), default the
    `small` preset (3 levels, base 8: level l convs f*2^l then f*2^(l+1),
    2x2x2 up-conv keeping the channels, decoder convs to the skip's channels,
    batch norm with scale/shift, ReLU, 1x1x1 output conv; 287378 parameters),
    but with same (zero) padding: input and output the same size, so a patch
    and its labels line up and a volume is segmented in one piece; PyTorch's
    default initialisation;
  * random flips along all three axes (per patch, each axis with p 0.5), the
    cheapest augmentation that does not change the labels' geometry;
  * Adam, lr 1e-3 (the default choice; --optim sgd --momentum 0.99 is unet3d's
    optimiser), batch 1;
  * cross-entropy with ignore_index 255 (unannotated voxels have no say) and
    the class weights of unet3d's `--class-weights auto`: over the annotated
    voxels of all training volumes, w_c = n / (P n_c), n annotated voxels,
    n_c of class c, P the classes present; 0 for a class never annotated;
  * inputs normalised per volume and channel as unet3d's default
    (`--normalize percentile`, src/data/normalize.c): x' = (x - p1) / (p99.8 -
    p1), percentiles with linear interpolation between ranks over all voxels,
    no clipping (divisor 1 if p99.8 == p1); or --normalize zscore (mean,
    population sd) or none.

Training: each iteration draws --batch patches; each from a training volume
picked uniformly at random, at a uniformly random position inside it. A patch
without any annotated voxel is drawn again (up to 10 draws); if all 10 miss,
the patch is centred (as far as the volume allows) on an annotated voxel
picked at random, so sparse slices are hit and no iteration is lost. The
default patch is 48x48x48, each side clamped to the smallest training volume's
side rounded down to a multiple of 2^(levels-1) (e.g. 32x48x48 for a
32x128x128 volume); along a side shorter than that multiple the volume is
mirrored (edge voxel repeated, as unet3d's mirror) and the padding left
unannotated. The budget is --iterations N or --minutes M: wall time counted
from the start of the first iteration (reading, normalising and building the
net are left out), checked after each iteration (the last one may run past
the budget by less than an iteration).

Prediction (eval mode: batch norm with its running statistics, momentum 0.1,
as unet3d's predict): the whole volume at once if its estimated memory fits
--max-memory-mb, mirrored to a multiple of 2^(levels-1) and cropped back;
else overlapping tiles (overlap-tile: each tile's border margin is thrown
away, the cores tile the volume, the volume's outside mirrored; the margin is
the net's reach, 24 voxels for 3 levels, so inside the volume tiles give the
whole volume's result; within that reach of the volume's faces the tiles see
the mirrored outside where the whole volume sees the convolutions' zero
padding: 99.1% of 1135's voxels agree after 8 iterations, all 52^3 inner
ones). Argmax, written as a uint8 ImageJ TIFF (Z,Y,X) with the image's voxel
spacing: the raw prediction, annotated voxels included (`unet3d densify`
keeps the user's labels there; score with `unet3d evaluate --exclude
SPARSE.tif`, which leaves them out). The file is written to OUT.tmp and
renamed, so nothing partial is left.

--truth T.tif [--exclude SPARSE.tif] prints IoU and Dice per class as
`unet3d evaluate` (src/metrics/metrics.c): voxels where SPARSE is not 255 and
voxels where the truth is 255 are not scored; classes up to the largest label
scored in truth or prediction; the means over the classes present in either.

The last line on stdout is a JSON summary (iterations, seconds, patch, ...).

Usage (the peers' virtual environment of tools/compare_peers.py plus
`pip install tifffile`; only torch, numpy and tifffile are needed):

    # semi-automatic, next to `unet3d densify --minutes 10`
    nice -n 10 /work/venv-peers/bin/python tools/torch_reference.py \\
        --image 1135_image.tif --labels sparse.tif --minutes 10 \\
        --out seg.tif --truth 1135_labels.tif --exclude sparse.tif
    # fully automatic, next to `unet3d train` + `unet3d predict`
    ... --image a.tif --labels a_sparse.tif --image b.tif --labels b_sparse.tif \\
        --minutes 30 --predict-image c.tif --out c_seg.tif --truth c_labels.tif
"""
import argparse
import json
import math
import os
import sys
import time

sys.dont_write_bytecode = True  # no tools/__pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_peers  # noqa: E402  (import_torch, torch_unet, param_counts)

IGNORE = 255
MAX_DRAWS = 10


def die(msg):
    sys.exit("torch_reference: " + msg)


def say(msg):
    print("torch_reference: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Volumes

def read_tiff(path):
    """(array, spacing (z, y, x) or None, unit) with the axes C,Z,Y,X."""
    import numpy as np
    import tifffile
    try:
        with tifffile.TiffFile(path) as t:
            s = t.series[0]
            a = s.asarray()
            axes = s.axes
            ij = t.imagej_metadata or {}
            page = t.pages[0]
            xr = page.tags.get("XResolution")
            yr = page.tags.get("YResolution")
    except (OSError, ValueError, tifffile.TiffFileError) as e:
        die("%s: %s" % (path, e))
    axes = axes.replace("I", "Z").replace("Q", "Z").replace("S", "C")
    for ax in "TR":  # time points / others of one: dropped
        if ax in axes:
            i = axes.index(ax)
            if a.shape[i] != 1:
                die("%s: axes %s: %d %s points, one wanted" % (path, s.axes, a.shape[i], ax))
            a = a.take(0, axis=i)
            axes = axes.replace(ax, "")
    for ax in "CZ":
        if ax not in axes:
            a = a[np.newaxis]
            axes = ax + axes
    if sorted(axes) != sorted("CZYX"):
        die("%s: axes %s not understood (Z,Y,X or Z,C,Y,X wanted)" % (path, s.axes))
    a = np.transpose(a, [axes.index(ax) for ax in "CZYX"])

    def res(tag):
        if tag is None:
            return None
        v = tag.value
        r = v[0] / v[1] if isinstance(v, tuple) and v[1] else float(v)
        return 1.0 / r if r > 0 else None

    sp = (float(ij.get("spacing", 1.0)), res(yr) or 1.0, res(xr) or 1.0)
    return a, sp, ij.get("unit", "")


def read_image(path):
    import numpy as np
    a, sp, unit = read_tiff(path)
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        die("%s: NaN/Inf values" % path)
    return a, sp, unit


def read_labels(path):
    import numpy as np
    a, _, _ = read_tiff(path)
    if a.shape[0] != 1:
        die("%s: %d channels, labels have one" % (path, a.shape[0]))
    if a.dtype.kind not in "ui" or a.min() < 0 or a.max() > 255:
        die("%s: labels must be integers 0..255 (%d unannotated), got %s"
            % (path, IGNORE, a.dtype))
    return a[0].astype(np.uint8)


def percentile(x, p):
    """As normalize.c: linear interpolation between ranks."""
    import numpy as np
    n = x.size
    pos = p / 100.0 * (n - 1)
    i = int(math.floor(pos))
    frac = pos - i
    kth = [i, i + 1] if frac != 0 and i + 1 < n else [i]
    part = np.partition(x, kth)
    lo = float(part[i])
    return lo if len(kth) == 1 else lo + frac * (float(part[i + 1]) - lo)


def normalize(img, mode):
    """Per channel x' = (x - a) / b, a and b as unet3d's u3d_norm_compute."""
    import numpy as np
    out = np.empty_like(img)
    for c in range(img.shape[0]):
        x = img[c].reshape(-1)
        if mode == "none":
            a, b = 0.0, 1.0
        elif mode == "zscore":
            mean = float(np.sum(x, dtype=np.float64)) / x.size
            sd = math.sqrt(float(np.sum((x.astype(np.float64) - mean) ** 2)) / x.size)
            a, b = mean, sd if sd > 0 else 1.0
        else:
            lo, hi = percentile(x, 1.0), percentile(x, 99.8)
            a, b = lo, hi - lo if hi > lo else 1.0
        out[c] = (img[c] - np.float32(a)) / np.float32(b)
    return out


def mirror_pad(a, before, after):
    """Pads the last three axes, the edge voxel repeated (unet3d's mirror)."""
    import numpy as np
    lead = [(0, 0)] * (a.ndim - 3)
    return np.pad(a, lead + list(zip(before, after)), mode="symmetric")


# --------------------------------------------------------------------------
# Training

def parse_patch(s):
    try:
        p = [int(v) for v in s.lower().split("x")]
    except ValueError:
        p = []
    if len(p) != 3 or min(p) < 1:
        die("--patch wants DxHxW, e.g. 48x48x48, got '%s'" % s)
    return p


def choose_patch(args, shapes, q):
    if args.patch:
        p = parse_patch(args.patch)
        bad = [v for v in p if v % q]
        if bad:
            die("--patch %s: every side must be a multiple of %d (2^(levels-1))" % (args.patch, q))
        return p
    return [max(q, min(48, min(s[a] for s in shapes) // q * q)) for a in range(3)]


class Volume:
    def __init__(self, img, lab, patch):
        import numpy as np
        short = [max(0, p - s) for p, s in zip(patch, lab.shape)]
        if any(short):  # smaller than the patch: mirrored, padding unannotated
            before = [v // 2 for v in short]
            after = [v - b for v, b in zip(short, before)]
            img = mirror_pad(img, before, after)
            lab = np.pad(lab, list(zip(before, after)), constant_values=IGNORE)
        self.img, self.lab = img, lab
        self.annotated = np.flatnonzero(lab != IGNORE)


def draw_patch(vol, patch, rng, flips):
    import numpy as np
    D = vol.lab.shape
    o = None
    for _ in range(MAX_DRAWS):
        c = [int(rng.integers(0, D[a] - patch[a] + 1)) for a in range(3)]
        sl = tuple(slice(c[a], c[a] + patch[a]) for a in range(3))
        if np.any(vol.lab[sl] != IGNORE):
            o = c
            break
    if o is None:  # centred on an annotated voxel
        v = np.unravel_index(vol.annotated[int(rng.integers(0, vol.annotated.size))], D)
        o = [min(max(int(v[a]) - patch[a] // 2, 0), D[a] - patch[a]) for a in range(3)]
    sl = tuple(slice(o[a], o[a] + patch[a]) for a in range(3))
    x, y = vol.img[(slice(None),) + sl], vol.lab[sl]
    if flips:
        for a in range(3):
            if rng.integers(0, 2):
                x, y = np.flip(x, a + 1), np.flip(y, a)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def class_weights(labels, classes):
    """unet3d's u3d_class_weights_auto over all training volumes."""
    import numpy as np
    counts = np.zeros(classes, dtype=np.int64)
    for lab in labels:
        c = np.bincount(lab.reshape(-1), minlength=256)
        if c[classes:IGNORE].any() or c[IGNORE + 1:].any():
            die("a label value >= --classes %d (other than %d)" % (classes, IGNORE))
        counts += c[:classes]
    total, present = int(counts.sum()), int((counts > 0).sum())
    return [total / (present * int(n)) if n else 0.0 for n in counts], counts


def train(torch, model, vols, args, patch, weights):
    import numpy as np
    rng = np.random.default_rng(args.seed)
    if args.optim == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32),
                                        ignore_index=IGNORE)
    model.train()
    budget = args.minutes * 60.0 if args.minutes is not None else None
    it, loss_v, t0 = 0, float("nan"), time.monotonic()
    last_say = t0
    while True:
        xs, ys = [], []
        for _ in range(args.batch):
            x, y = draw_patch(vols[int(rng.integers(0, len(vols)))], patch, rng, args.flips)
            xs.append(x)
            ys.append(y)
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys).astype(np.int64))
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss_v = float(loss.detach())
        it += 1
        now = time.monotonic()
        if not math.isfinite(loss_v):
            die("iteration %d: loss %s" % (it, loss_v))
        if now - last_say >= 10 or it == 1:
            say("iteration %d, loss %.4f, %.1f s" % (it, loss_v, now - t0))
            last_say = now
        if (budget is not None and now - t0 >= budget) or \
                (args.iterations is not None and it >= args.iterations):
            return it, now - t0, loss_v


# --------------------------------------------------------------------------
# Prediction

def bytes_per_voxel(cfg):
    """Rough peak of the eval forward pass at full resolution: the input, the
    skip (2f), the up-conv output (4f), their concatenation (6f), the convs'
    outputs and batch norm (about 12f), coarser levels 1/7 more."""
    return 4.0 * (cfg["in_channels"] + 24 * cfg["base"]) * 8.0 / 7.0


def context(levels):
    """How far an output voxel of the same-padded net sees: two 3x3x3 convs
    per level (encoder and decoder), at the level's stride, and the pools."""
    enc = sum(2 * 2 ** l for l in range(levels))
    dec = sum(2 * 2 ** l for l in range(levels - 1))
    return enc + dec + 2 ** (levels - 1) - 1


def axis_plan(n, t, m, q):
    """Tile input size, core size and count along one axis of n voxels: as
    few tiles as tiles of at most t allow, then as small as they can be."""
    ceil_q = lambda v: -(-v // q) * q  # noqa: E731
    count = -(-n // (min(t, ceil_q(n + 2 * m)) - 2 * m))
    t = ceil_q(-(-n // count) + 2 * m)
    return t, t - 2 * m, count


def predict(torch, model, img, cfg, q, max_bytes):
    import numpy as np
    shape = img.shape[1:]
    bpv = bytes_per_voxel(cfg)
    whole = [-(-s // q) * q for s in shape]
    if whole[0] * whole[1] * whole[2] * bpv <= max_bytes:
        m, t = 0, max(whole)
    else:  # the margin: the net's reach, so tiles agree with the whole
        m = -(-context(cfg["levels"]) // q) * q
        t = max(2 * m + q, int((max_bytes / bpv) ** (1.0 / 3.0)) // q * q)
    plan = [axis_plan(n, t, m, q) for n in shape]
    size = [p[1] * p[2] for p in plan]  # the cores' extent
    xp = mirror_pad(img, [m] * 3, [size[a] - shape[a] + m for a in range(3)])
    out = np.zeros(size, dtype=np.uint8)
    model.eval()
    ntiles = plan[0][2] * plan[1][2] * plan[2][2]
    say("predicting %dx%dx%d in %d tile%s of %dx%dx%d (margin %d)"
        % (tuple(shape) + (ntiles, "" if ntiles == 1 else "s") + tuple(p[0] for p in plan) + (m,)))
    with torch.inference_mode():
        for i in range(plan[0][2]):
            for j in range(plan[1][2]):
                for k in range(plan[2][2]):
                    o = [i * plan[0][1], j * plan[1][1], k * plan[2][1]]
                    sl = tuple(slice(o[a], o[a] + plan[a][0]) for a in range(3))
                    x = torch.from_numpy(np.ascontiguousarray(xp[(slice(None),) + sl])[None])
                    y = model(x)[0].argmax(0).to(torch.uint8).numpy()
                    core = tuple(slice(m, m + plan[a][1]) for a in range(3))
                    out[tuple(slice(o[a], o[a] + plan[a][1]) for a in range(3))] = y[core]
    return out[:shape[0], :shape[1], :shape[2]]


def write_labels(path, seg, spacing, unit):
    import tifffile
    tmp = path + ".tmp"
    meta = {"axes": "ZYX", "spacing": spacing[0]}
    if unit:
        meta["unit"] = unit
    try:
        tifffile.imwrite(tmp, seg, imagej=True, metadata=meta,
                         resolution=(1.0 / spacing[2], 1.0 / spacing[1]))
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        die("%s: %s" % (path, e))


# --------------------------------------------------------------------------
# Scoring (src/metrics/metrics.c)

def metrics(pred, truth, exclude):
    import numpy as np
    keep = truth != IGNORE
    if exclude is not None:
        keep &= exclude == IGNORE
    p, t = pred[keep].astype(np.int64), truth[keep].astype(np.int64)
    k = max(1, int(p.max()) + 1 if p.size else 0, int(t.max()) + 1 if t.size else 0)
    tp = np.bincount(t[p == t], minlength=k)
    fp = np.bincount(p[p != t], minlength=k)
    fn = np.bincount(t[p != t], minlength=k)
    iou, dice = [], []
    for c in range(k):
        d = tp[c] + fp[c] + fn[c]
        iou.append(float(tp[c]) / d if d else None)
        dice.append(2.0 * float(tp[c]) / float(2 * tp[c] + fp[c] + fn[c]) if d else None)
    pres = [v for v in iou if v is not None]
    mean = lambda v: sum(x for x in v if x is not None) / len(pres) if pres else None  # noqa: E731
    return {"iou": iou, "mean_iou": mean(iou), "dice": dice, "mean_dice": mean(dice),
            "voxels": int(keep.sum()), "tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist()}


def print_metrics(m):
    f = lambda v: "%8s" % "-" if v is None else "%8.4f" % v  # noqa: E731
    print("%-8s %8s %8s %12s %12s %12s" % ("class", "IoU", "Dice", "TP", "FP", "FN"))
    for c in range(len(m["iou"])):
        print("%-8d %s %s %12d %12d %12d" % (c, f(m["iou"][c]), f(m["dice"][c]),
                                             m["tp"][c], m["fp"][c], m["fn"][c]))
    print("%-8s %s %s   (scored voxels %d)" % ("mean", f(m["mean_iou"]), f(m["mean_dice"]),
                                               m["voxels"]))


# --------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", action="append", required=True, metavar="I.tif",
                    help="training image (repeat, paired with --labels)")
    ap.add_argument("--labels", action="append", required=True, metavar="L.tif",
                    help="its sparse labels, uint8, 255 unannotated")
    b = ap.add_mutually_exclusive_group(required=True)
    b.add_argument("--minutes", type=float, help="training wall time (from the first iteration)")
    b.add_argument("--iterations", type=int, help="training iterations")
    ap.add_argument("--out", required=True, metavar="SEG.tif",
                    help="the segmentation (of --predict-image, else of the first --image)")
    ap.add_argument("--predict-image", metavar="P.tif", help="segment this (fully automatic)")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--base", type=int, default=8, help="channels of the first conv")
    ap.add_argument("--classes", type=int, help="default: largest label (not 255) + 1, at least 2")
    ap.add_argument("--patch", metavar="DxHxW", help="default 48x48x48 clamped to the volumes")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optim", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--momentum", type=float, default=0.99, help="of --optim sgd")
    ap.add_argument("--flips", action=argparse.BooleanOptionalAction, default=True,
                    help="random flips along the 3 axes (default on)")
    ap.add_argument("--normalize", choices=["percentile", "zscore", "none"], default="percentile")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-memory-mb", type=float, default=4096,
                    help="prediction in tiles above this estimate (default 4096; "
                         "about 0.8 KiB a voxel for the small net)")
    ap.add_argument("--truth", metavar="T.tif", help="dense truth: print IoU/Dice")
    ap.add_argument("--exclude", metavar="SPARSE.tif",
                    help="with --truth: score only voxels unannotated (255) here")
    args = ap.parse_args()
    if len(args.image) != len(args.labels):
        die("%d --image but %d --labels: give them in pairs" % (len(args.image), len(args.labels)))
    if (args.iterations is not None and args.iterations < 1) or \
            (args.minutes is not None and not args.minutes > 0):
        die("the budget must be positive")
    if args.exclude and not args.truth:
        die("--exclude needs --truth")
    if args.levels < 1 or args.base < 1 or args.batch < 1 or args.threads < 1:
        die("--levels, --base, --batch and --threads must be >= 1")
    return args


def main():
    args = parse_args()
    import numpy as np
    torch, why = compare_peers.import_torch(False)
    if torch is None:
        die("torch " + why)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    q = 2 ** (args.levels - 1)

    imgs, labs = [], []
    for ip, lp in zip(args.image, args.labels):
        img, sp, unit = read_image(ip)
        lab = read_labels(lp)
        if img.shape[1:] != lab.shape:
            die("%s is %s but %s is %s (D x H x W)" % (ip, "x".join(map(str, img.shape[1:])),
                                                       lp, "x".join(map(str, lab.shape))))
        if imgs and img.shape[0] != imgs[0].shape[0]:
            die("%s: %d channels, %s has %d" % (ip, img.shape[0], args.image[0], imgs[0].shape[0]))
        if not np.any(lab != IGNORE):
            die("%s: no annotated voxel" % lp)
        imgs.append(normalize(img, args.normalize))
        labs.append(lab)
        if len(imgs) == 1:
            first_meta = (sp, unit)
    classes = args.classes
    if classes is None:
        classes = max(2, max(int(l[l != IGNORE].max()) + 1 for l in labs))
    weights, counts = class_weights(labs, classes)
    patch = choose_patch(args, [l.shape for l in labs], q)
    vols = [Volume(i, l, patch) for i, l in zip(imgs, labs)]

    cfg = {"levels": args.levels, "base": args.base, "in_channels": imgs[0].shape[0],
           "classes": classes, "bn_affine": True, "padding": "same"}
    model = compare_peers.torch_unet(torch, cfg)
    nparams = compare_peers.param_counts(torch, model)[1]
    say("torch %s, %d threads; U-Net %d levels, base %d, %d input channel(s), %d classes, "
        "same padding, %d parameters" % (torch.__version__, args.threads, args.levels, args.base,
                                          cfg["in_channels"], classes, nparams))
    say("%d training volume(s), %d annotated voxels %s, class weights %s; patch %s, batch %d, "
        "%s lr %g%s, flips %s" % (len(vols), int(counts.sum()), counts.tolist(),
                                  ["%.4g" % w for w in weights], "x".join(map(str, patch)),
                                  args.batch, args.optim, args.lr,
                                  " momentum %g" % args.momentum if args.optim == "sgd" else "",
                                  "on" if args.flips else "off"))

    iters, secs, last_loss = train(torch, model, vols, args, patch, weights)
    say("trained %d iterations in %.1f s (last loss %.4f)" % (iters, secs, last_loss))

    if args.predict_image:
        pimg, psp, punit = read_image(args.predict_image)
        if pimg.shape[0] != cfg["in_channels"]:
            die("%s: %d channels, the training images %d" % (args.predict_image, pimg.shape[0],
                                                             cfg["in_channels"]))
        pimg, meta = normalize(pimg, args.normalize), (psp, punit)
    else:
        pimg, meta = imgs[0], first_meta
    del vols
    t0 = time.monotonic()
    seg = predict(torch, model, pimg, cfg, q, args.max_memory_mb * 2 ** 20)
    psecs = time.monotonic() - t0
    write_labels(args.out, seg, *meta)
    say("wrote %s (prediction %.1f s)" % (args.out, psecs))

    summary = {"mode": "fully automatic" if args.predict_image else "semi-automatic",
               "iterations": iters, "seconds": round(secs, 3), "patch": patch,
               "batch": args.batch, "optim": args.optim, "lr": args.lr, "flips": args.flips,
               "classes": classes, "class_weights": [round(w, 6) for w in weights],
               "params": nparams, "last_loss": round(last_loss, 6),
               "predict_seconds": round(psecs, 3), "threads": args.threads,
               "torch": torch.__version__, "out": args.out}
    if args.truth:
        truth = read_labels(args.truth)
        excl = read_labels(args.exclude) if args.exclude else None
        for name, a in (("truth", truth), ("exclude", excl)):
            if a is not None and a.shape != seg.shape:
                die("--%s is %s, the prediction %s" % (name, a.shape, seg.shape))
        m = metrics(seg, truth, excl)
        print_metrics(m)
        summary.update({k: m[k] for k in ("iou", "mean_iou", "dice", "mean_dice", "voxels")})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
