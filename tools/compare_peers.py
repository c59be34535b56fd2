#!/usr/bin/env python3
"""unet3d against its peers (PyTorch/oneDNN, OpenVINO), in one run, same machine.

Runs, one after the other on this machine:
  * `unet3d bench --json --only <conv rows>`: the FMA peak and the 3x3x3 conv
    (forward / data gradient / weight gradient), 1x1x1 conv and 2x2x2 up-conv
    rows on the paper's shapes, and the same shapes in PyTorch (forward, data
    and weight gradient through aten.convolution_backward) and OpenVINO
    (forward only);
  * `unet3d bench --train paper` and `--train small` (one training iteration:
    forward, softmax-CE with class weights and ignore label 255, backward, SGD
    with momentum) and the same iteration of an equivalent PyTorch U-Net;
  * `unet3d bench --infer paper` (one 116x132x132 tile, running statistics,
    batch norm folded) and the same tile in PyTorch (eval) and OpenVINO (the
    PyTorch module converted by openvino.convert_model; OpenVINO folds batch
    norm itself).
All fp32, all on the CPU with every core (unet3d through its OpenCL device, PoCL
on a CPU; PyTorch torch.set_num_threads(cores); OpenVINO INFERENCE_NUM_THREADS =
cores, LATENCY hint, INFERENCE_PRECISION_HINT f32). Warm-up runs are excluded.

Statistics: PyTorch and OpenVINO: min and median of --reps (ops) or --iters
(train, infer) timed runs. unet3d: the op rows are bench's medians (bench times
each row --reps times and reports the median); `bench --train/--infer` report the
best (min) of --iters. Ratios compare like with like: op rows median/median,
train and infer rows min/min. ratio = unet3d GFLOP/s / peer GFLOP/s = peer
seconds / unet3d seconds: above 1, unet3d is faster.
GFLOP counts are unet3d's (2*cin*cout*k^3 per output voxel; up-conv 2*cin*cout
per output voxel), the same for every peer. Training rows: nominal 3x the
forward FLOP (forward, data and weight gradients) per second.

The peers come from a virtual environment outside the repository (never needed
to build or test unet3d):

    python3 -m venv /work/venv-peers
    /work/venv-peers/bin/pip install numpy openvino torch packaging
    # (packaging: OpenVINO's converter of torch.export graphs needs it; without
    # it the script falls back to convert_model's TorchScript tracing)
    # PyPI's torch is a CUDA build; if `import torch` fails on missing CUDA
    # libraries on a machine without a GPU, also:
    /work/venv-peers/bin/pip install nvidia-cufile nvidia-cusparselt-cu13 \
        nvidia-nvshmem-cu13
    # (the script then puts site-packages/nvidia/*/lib and
    # /usr/local/cuda/lib64 on LD_LIBRARY_PATH and starts itself again)

Usage (a quiet machine; the full run takes several minutes):

    nice -n 10 /work/venv-peers/bin/python tools/compare_peers.py \
        --unet3d build/unet3d [--json FILE] [--markdown]
    (JSON by default next to the binary: build/compare_peers.json)
    ... --quick            tiny shapes, seconds: a smoke test of every path
    ... --only train_small,conv3d_fwd_3to32,infer_paper   some rows only
    ... --no-torch / --no-openvino                         leave a peer out

A missing peer (not importable) is reported and its columns stay empty; the
rest still runs. Exit status 0 unless unet3d itself failed.
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

# --------------------------------------------------------------------------
# Peers' import (PyPI torch: CUDA libraries on LD_LIBRARY_PATH if needed)

REEXEC_MARK = "U3D_COMPARE_PEERS_REEXEC"


def cuda_lib_dirs():
    dirs = []
    for sp in sys.path:
        if sp.endswith("site-packages") and os.path.isdir(os.path.join(sp, "nvidia")):
            dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))
            dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "cu*", "lib")))
    if os.path.isdir("/usr/local/cuda/lib64"):
        dirs.append("/usr/local/cuda/lib64")
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def import_torch(skip):
    """torch, or None and the reason."""
    if skip:
        return None, "left out (--no-torch)"
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # a CPU comparison
    try:
        import torch  # noqa: F401
        return torch, None
    except (ImportError, OSError) as e:
        msg = str(e)
        if os.environ.get(REEXEC_MARK) or not re.search(r"\.so|librar", msg):
            return None, "not importable: %s" % msg.splitlines()[0]
        dirs = cuda_lib_dirs()
        if not dirs:
            return None, "not importable: %s" % msg.splitlines()[0]
        env = dict(os.environ)
        env[REEXEC_MARK] = "1"
        env["LD_LIBRARY_PATH"] = ":".join(dirs + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p])
        print("compare_peers: torch needs its CUDA libraries; starting again with "
              "LD_LIBRARY_PATH=%s" % env["LD_LIBRARY_PATH"], file=sys.stderr)
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def import_openvino(skip):
    if skip:
        return None, "left out (--no-openvino)"
    try:
        import openvino  # noqa: F401
        return openvino, None
    except (ImportError, OSError) as e:
        return None, "not importable: %s" % str(e).splitlines()[0]


# --------------------------------------------------------------------------
# Machine and versions

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split(":", 1)[1].split()
                    return [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if x in fl]
    except OSError:
        pass
    return []


def run_text(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def pocl_version():
    out = run_text(["clinfo", "--raw"])
    m = re.search(r"CL_PLATFORM_VERSION\s+(OpenCL [^ ]+ PoCL [^ ]+)", out)
    if m:
        return m.group(1)
    m = re.search(r"CL_PLATFORM_VERSION\s+(.+)", out)
    return m.group(1).strip() if m else "unknown (no clinfo)"


def unet3d_version(binary):
    ver = run_text([binary, "--version"]) or "unet3d (version unknown)"
    d = os.path.dirname(os.path.abspath(binary))
    commit = run_text(["git", "-C", d, "rev-parse", "--short", "HEAD"])
    dirty = run_text(["git", "-C", d, "status", "--porcelain", "--untracked-files=no"])
    if commit:
        # the checkout holding the binary: its commit, not necessarily the
        # one the binary was built from if the tree moved on since
        ver += ", tree %s%s" % (commit, " (modified)" if dirty else "")
    return ver


# --------------------------------------------------------------------------
# unet3d

def unet3d_device(binary):
    """The first OpenCL device's name and compute units (PoCL: one thread
    each), from `unet3d devices`."""
    m = re.search(r"^opencl\s+\S+\s+(.*?) \| (.*?) \| \w+ \| (\d+) compute units",
                  run_text([binary, "devices"]), re.M)
    return ("%s / %s" % (m.group(1), m.group(2)), int(m.group(3))) if m else (None, None)


def unet3d_json(binary, args, what):
    cmd = [binary] + args
    print("  $ %s" % " ".join(cmd), file=sys.stderr)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (what, p.returncode, p.stderr.strip()[-500:]))
    try:
        obj = json.loads(p.stdout)
    except ValueError:
        raise RuntimeError("%s: not JSON: %s" % (what, p.stdout[:300]))
    print("    (%.1f s)" % (time.time() - t0), file=sys.stderr)
    return obj


def unet3d_info(binary, preset):
    out = run_text([binary, "info", "--preset", preset])
    m = re.search(r"learnable parameters:\s*(\d+).*\n\s*(\d+)", out)
    arch = re.search(r"network: (.*)", out)
    if not m or not arch:
        return None
    a = arch.group(1)
    cfg = {
        "levels": int(re.search(r"(\d+) levels", a).group(1)),
        "base": int(re.search(r"base channels (\d+)", a).group(1)),
        "in_channels": int(re.search(r"(\d+) input channel", a).group(1)),
        "classes": int(re.search(r"(\d+) classes", a).group(1)),
        "bn_affine": "without scale/shift" not in a,
        "description": a,
        "params_paper_count": int(m.group(1)),
        "params_with_bn_affine": int(m.group(2)),
    }
    return cfg


CONV_ROWS = ["3to32", "32to64", "256to256", "256to512", "64to3_k1"]
UP_ROWS = ["512", "128"]
PASSES = [("fwd", "forward"), ("bwd_data", "data grad"), ("bwd_weight", "weight grad")]


def op_row_names():
    names = []
    for s in CONV_ROWS:
        for p, _ in PASSES:
            names.append("conv3d_%s_%s" % (p, s))
    for s in UP_ROWS:
        for p, _ in PASSES:
            names.append("upconv_%s_%s" % (p, s))
    return names


def parse_shape(s):
    """'3->32 ch, in 116x132x132, k3' or '512->512 ch, in 7x9x9, k2 s2'."""
    m = re.match(r"(\d+)->(\d+) ch, in (\d+)x(\d+)x(\d+), k(\d+)( s2)?", s)
    if not m:
        return None
    v = [int(m.group(i)) for i in range(1, 7)]
    return {"cin": v[0], "cout": v[1], "dhw": v[2:5], "k": v[5], "up": bool(m.group(7))}


def op_flops(sh):
    d, h, w = sh["dhw"]
    if sh["up"]:
        return 2.0 * sh["cin"] * sh["cout"] * 8.0 * d * h * w
    k = sh["k"]
    return 2.0 * sh["cout"] * sh["cin"] * k ** 3 * (d - k + 1) * (h - k + 1) * (w - k + 1)


# --------------------------------------------------------------------------
# The architecture (README, ../shared/golden/README.md, case `unet3d`):
# geometry and FLOP count without torch

def net_trace(cfg, dhw):
    """Output size and forward FLOP of the valid-conv U-Net; None if the
    input does not fit (odd size before a pool, nothing left)."""
    L, f, cin = cfg["levels"], cfg["base"], cfg["in_channels"]
    flops = 0.0
    size = list(dhw)
    c = cin
    skips = []

    def conv(ci, co, k):
        nonlocal flops, size
        size = [s - k + 1 for s in size]
        if min(size) < 1:
            raise ValueError
        flops += 2.0 * ci * co * k ** 3 * size[0] * size[1] * size[2]

    try:
        for l in range(L):
            c1, c2 = f * 2 ** l, f * 2 ** (l + 1)
            conv(c, c1, 3)
            conv(c1, c2, 3)
            c = c2
            if l < L - 1:
                skips.append((list(size), c))
                if any(s % 2 for s in size):
                    raise ValueError
                size = [s // 2 for s in size]
        for j in range(L - 1):
            size = [2 * s for s in size]
            flops += 2.0 * c * c * size[0] * size[1] * size[2]
            ssize, sc = skips[L - 2 - j]
            if any(a < b for a, b in zip(ssize, size)):
                raise ValueError
            conv(sc + c, sc, 3)
            conv(sc, sc, 3)
            c = sc
        conv(c, cfg["classes"], 1)
    except ValueError:
        return None
    return size, flops


# --------------------------------------------------------------------------
# Timing helpers

def timed(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"min_s": min(ts), "median_s": statistics.median(ts), "runs": len(ts)}


# --------------------------------------------------------------------------
# PyTorch

def torch_setup(torch, threads):
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    info = {"version": torch.__version__, "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available())}
    return info


def torch_conv_rows(torch, sh, reps, passes):
    """Forward, data gradient, weight gradient of one shape (+ bias grad for
    the conv, as unet3d's weight pass)."""
    F = torch.nn.functional
    g = torch.Generator().manual_seed(1)
    d, h, w = sh["dhw"]
    x = torch.rand(1, sh["cin"], d, h, w, generator=g) * 2 - 1
    if sh["up"]:
        wt = torch.rand(sh["cin"], sh["cout"], 2, 2, 2, generator=g) * 0.02
        y = F.conv_transpose3d(x, wt, None, stride=2)
        dy = torch.rand(y.shape, generator=g) * 2 - 1
        stride, bias_sizes = [2, 2, 2], None
        fwd = lambda: F.conv_transpose3d(x, wt, None, stride=2)  # noqa: E731
        wmask = [False, True, False]
    else:
        k = sh["k"]
        wt = torch.rand(sh["cout"], sh["cin"], k, k, k, generator=g) * 0.02
        b = torch.rand(sh["cout"], generator=g) * 0.1
        y = F.conv3d(x, wt, b)
        dy = torch.rand(y.shape, generator=g) * 2 - 1
        stride, bias_sizes = [1, 1, 1], [sh["cout"]]
        fwd = lambda: F.conv3d(x, wt, b)  # noqa: E731
        wmask = [False, True, True]
    cb = torch.ops.aten.convolution_backward

    def bwd(mask):
        return lambda: cb(dy, x, wt, bias_sizes, stride, [0, 0, 0], [1, 1, 1],
                          sh["up"], [0, 0, 0], 1, mask)

    fns = {"fwd": fwd, "bwd_data": bwd([True, False, False]), "bwd_weight": bwd(wmask)}
    # two warm-ups: oneDNN creates its primitives on the first call of a shape
    return {p: timed(fns[p], reps, warmup=2) for p in ("fwd", "bwd_data", "bwd_weight") if p in passes}


def torch_unet(torch, cfg):
    """unet3d's U-Net in PyTorch. cfg: levels, base, in_channels, classes,
    bn_affine, and padding ("valid", the default, or "same": zero padding 1,
    as `unet3d --padding same`; the same parameters either way)."""
    nn = torch.nn
    pad = {"valid": 0, "same": 1}[cfg.get("padding", "valid")]

    def block(ci, c1, c2):
        return nn.Sequential(
            nn.Conv3d(ci, c1, 3, padding=pad), nn.BatchNorm3d(c1, affine=cfg["bn_affine"]),
            nn.ReLU(inplace=True),
            nn.Conv3d(c1, c2, 3, padding=pad), nn.BatchNorm3d(c2, affine=cfg["bn_affine"]),
            nn.ReLU(inplace=True))

    class UNet3D(nn.Module):
        def __init__(self):
            super().__init__()
            L, f = cfg["levels"], cfg["base"]
            self.enc = nn.ModuleList()
            c = cfg["in_channels"]
            skipc = []
            for l in range(L):
                c1, c2 = f * 2 ** l, f * 2 ** (l + 1)
                self.enc.append(block(c, c1, c2))
                c = c2
                skipc.append(c)
            self.pool = nn.MaxPool3d(2)
            self.up = nn.ModuleList()
            self.dec = nn.ModuleList()
            for j in range(L - 1):
                sc = skipc[L - 2 - j]
                self.up.append(nn.ConvTranspose3d(c, c, 2, stride=2, bias=False))
                self.dec.append(block(sc + c, sc, sc))
                c = sc
            self.out = nn.Conv3d(c, cfg["classes"], 1)

        def forward(self, x):
            skips = []
            L = len(self.enc)
            for l, e in enumerate(self.enc):
                x = e(x)
                if l < L - 1:
                    skips.append(x)
                    x = self.pool(x)
            for j in range(L - 1):
                x = self.up[j](x)
                s = skips[L - 2 - j]
                o = [(a - b) // 2 for a, b in zip(s.shape[2:], x.shape[2:])]
                s = s[:, :, o[0]:o[0] + x.shape[2], o[1]:o[1] + x.shape[3], o[2]:o[2] + x.shape[4]]
                x = self.dec[j](torch.cat([s, x], 1))
            return self.out(x)

    return UNet3D()


def param_counts(torch, model):
    n = sum(p.numel() for p in model.parameters())
    bn = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d))
    affine = any(isinstance(m, torch.nn.BatchNorm3d) and m.affine for m in model.modules())
    # (as counted in the paper: without BN scale/shift; with them)
    return (n - 2 * bn, n) if affine else (n, n + 2 * bn)


def sin_input(torch, shape):
    n = 1
    for s in shape:
        n *= s
    return torch.sin(0.001 * torch.arange(n, dtype=torch.float64)).float().reshape(shape)


def torch_train(torch, cfg, dhw, iters):
    model = torch_unet(torch, cfg).train()
    x = sin_input(torch, (1, cfg["in_channels"]) + tuple(dhw))
    with torch.no_grad():
        osz = list(model(x).shape[2:])
    lab = torch.zeros([1] + osz, dtype=torch.long)
    cw = torch.ones(cfg["classes"])
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.99)
    F = torch.nn.functional

    def it():
        with torch.enable_grad():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), lab, weight=cw, ignore_index=255)
            loss.backward()
            opt.step()

    r = timed(it, iters)
    r["output_dhw"] = osz
    return r


def torch_eval_model(torch, cfg, seed=1):
    torch.manual_seed(seed)
    model = torch_unet(torch, cfg)
    # non-trivial running statistics, as a trained network has
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def torch_infer(torch, model, cfg, dhw, iters):
    x = sin_input(torch, (1, cfg["in_channels"]) + tuple(dhw))
    with torch.inference_mode():
        return timed(lambda: model(x), iters)


# --------------------------------------------------------------------------
# OpenVINO

def ov_core(ov, threads):
    core = ov.Core()
    props = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
             "INFERENCE_PRECISION_HINT": "f32"}
    return core, props


def ov_compile(ov, core, props, model):
    cm = core.compile_model(model, "CPU", props)
    got = {}
    for k in ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT"):
        try:
            got[k] = str(cm.get_property(k))
        except Exception:  # noqa: BLE001
            pass
    return cm, got


def ov_run(cm, x, iters):
    req = cm.create_infer_request()
    return timed(lambda: req.infer({0: x}), iters)


def ov_conv_row(ov, core, props, sh, reps):
    import numpy as np
    from openvino import opset13 as ops
    rng = np.random.default_rng(1)
    d, h, w = sh["dhw"]
    x = (rng.random((1, sh["cin"], d, h, w), dtype=np.float32) * 2 - 1)
    p = ops.parameter([1, sh["cin"], d, h, w], np.float32)
    if sh["up"]:
        wt = (rng.random((sh["cin"], sh["cout"], 2, 2, 2), dtype=np.float32) * 0.02)
        y = ops.convolution_backprop_data(p, ops.constant(wt), [2, 2, 2])
    else:
        k = sh["k"]
        wt = (rng.random((sh["cout"], sh["cin"], k, k, k), dtype=np.float32) * 0.02)
        b = (rng.random((1, sh["cout"], 1, 1, 1), dtype=np.float32) * 0.1)
        y = ops.add(ops.convolution(p, ops.constant(wt), [1, 1, 1], [0, 0, 0], [0, 0, 0], [1, 1, 1]),
                    ops.constant(b))
    model = ov.Model([y], [p], "conv")
    cm, got = ov_compile(ov, core, props, model)
    req = cm.create_infer_request()
    r = timed(lambda: req.infer({0: x}), reps, warmup=2)
    r["compiled"] = got
    return r


def ov_infer(ov, core, props, torch, tmodel, cfg, dhw, iters):
    import numpy as np
    shape = (1, cfg["in_channels"]) + tuple(dhw)
    ex = sin_input(torch, shape)
    # torch.export's graph first; TorchScript tracing (convert_model's own
    # path for an nn.Module) where export is unavailable or fails
    how = "torch.export + openvino.convert_model"
    try:
        with torch.no_grad():
            m = ov.convert_model(torch.export.export(tmodel, (ex,)))
    except Exception as e:  # noqa: BLE001
        how = "openvino.convert_model (TorchScript trace; torch.export failed: %s)" % (
            str(e).splitlines()[0] if str(e) else type(e).__name__)
        import warnings
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)
            m = ov.convert_model(tmodel, example_input=ex, input=[list(shape)])
    cm, got = ov_compile(ov, core, props, m)
    r = ov_run(cm, np.ascontiguousarray(ex.numpy()), iters)
    # the same logits as PyTorch's eval (a check that it is the same network)
    with torch.inference_mode():
        ref = tmodel(ex).numpy()
    out = cm.create_infer_request().infer({0: ex.numpy()})
    o = next(iter(out.values()))
    r["max_abs_diff_vs_torch"] = float(np.max(np.abs(o - ref)))
    r["conversion"] = how
    r["compiled"] = got
    return r


# --------------------------------------------------------------------------
# Output

def fmt_s(v):
    if v is None:
        return "–"
    if v >= 10:
        return "%.2f" % v
    if v >= 0.01:
        return "%.3f" % v
    return "%.2e" % v


def fmt_g(v):
    return "–" if v is None else ("%.0f" % v if v >= 10 else "%.2f" % v)


def fmt_r(v):
    return "–" if v is None else "%.2f" % v


def build_table(rows):
    head = ["row", "shape", "stat", "unet3d s", "GFLOP/s", "PyTorch s", "GFLOP/s",
            "OpenVINO s", "GFLOP/s", "u/PyTorch", "u/OpenVINO"]
    out = []
    for r in rows:
        u, t, o = r.get("unet3d"), r.get("torch"), r.get("openvino")
        stat = r["stat"]
        def s(x):
            return None if not x or x.get(stat) is None else x[stat]
        def g(x):
            v = s(x)
            return None if v is None or not r.get("gflop") else r["gflop"] / v
        ratio = lambda p: (s(p) / s(u)) if s(p) and s(u) else None  # noqa: E731
        out.append([r["id"], r["shape"], stat.replace("_s", ""), fmt_s(s(u)), fmt_g(g(u)),
                    fmt_s(s(t)), fmt_g(g(t)), fmt_s(s(o)), fmt_g(g(o)),
                    fmt_r(ratio(t)), fmt_r(ratio(o))])
    return head, out


def print_text(head, body, f=sys.stdout):
    w = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w[i]) if i < 3 else str(c).rjust(w[i])  # noqa: E731
                                   for i, c in enumerate(cells))
    print(line(head), file=f)
    print("  ".join("-" * x for x in w), file=f)
    for b in body:
        print(line(b), file=f)


def _stat(r, peer, what):
    x = r.get(peer)
    v = None if not x else x.get(r["stat"])
    if v is None:
        return None
    if what == "s":
        return v
    return r["gflop"] / v if r.get("gflop") else None


def summary_rows(rows):
    """The issue's layout: a row per workload, one per conv shape with its
    three passes side by side."""
    peers = ("unet3d", "torch", "openvino")
    byid = {r["id"]: r for r in rows}
    out = []

    def ratio(a, b):
        return fmt_r(b / a) if a and b else "–"

    for rid, label in (("train_paper", "training iteration, paper"), ("train_small", "training iteration, small"),
                       ("infer_paper", "inference, one paper tile"), ("infer_small", "inference, one small tile")):
        r = byid.get(rid)
        if not r:
            continue
        cells = []
        for p in peers:
            sec, g = _stat(r, p, "s"), _stat(r, p, "g")
            cells.append("–" if sec is None else "%s s (%s GFLOP/s)" % (fmt_s(sec), fmt_g(g)))
        u = _stat(r, "unet3d", "s")
        out.append(["%s %s, s (%s)" % (label, r["shape"].split(" ")[0], r["stat"][:-2])] + cells +
                   [ratio(u, _stat(r, "torch", "s")), ratio(u, _stat(r, "openvino", "s"))])
    for fam, sfxs in (("conv3d", CONV_ROWS), ("upconv", UP_ROWS)):
        for sfx in sfxs:
            rs = [byid.get("%s_%s_%s" % (fam, p, sfx)) for p, _ in PASSES]
            if not any(rs):
                continue
            shape = next(r for r in rs if r)["shape"]
            sh = parse_shape(shape)
            # the paper row's name; the shape it ran (--quick shrinks it)
            if fam == "upconv":
                what = "up-conv %s" % sfx
            else:
                what = "conv %s" % sfx.replace("to", "→").replace("_k1", " 1×1×1")
            m = re.match(r"(\d+)(?:to(\d+))?", sfx)
            paper = (int(m.group(1)), int(m.group(2) or m.group(1)))
            what += " at %s%s" % ("×".join(map(str, sh["dhw"])), "" if paper == (sh["cin"], sh["cout"])
                                  else " (ran %d→%d)" % (sh["cin"], sh["cout"]))
            cells = []
            for p in peers:
                gs = [(_stat(r, p, "g") if r else None) for r in rs]
                cells.append("–" if all(g is None for g in gs) else " / ".join(fmt_g(g) for g in gs))
            for p in ("torch", "openvino"):
                rr = []
                for r in rs:
                    rr.append(ratio(_stat(r, "unet3d", "s"), _stat(r, p, "s")) if r else "–")
                cells.append("–" if all(x == "–" for x in rr) else " / ".join(rr))
            out.append([what + ", fwd / data / weight GFLOP/s (median)"] + cells)
    return ["", "unet3d", "PyTorch", "OpenVINO", "unet3d/PyTorch", "unet3d/OpenVINO"], out


def print_markdown(meta, head, body, f=sys.stdout, rows=None):
    print("**%s, %s; unet3d %s; PoCL %s; PyTorch %s; OpenVINO %s; "
          "threads: %s (PyTorch, OpenVINO; unet3d: the OpenCL device's %s compute units); one run of `tools/compare_peers.py`%s.**" % (
              meta["date"][:10], meta["machine"], meta["unet3d"].replace("unet3d ", "", 1), meta["pocl"],
              meta["torch"].get("version", "–"), meta["openvino"].get("version", "–"),
              meta["threads"], meta["unet3d_compute_units"] or "?",
              " --quick" if meta["quick"] else ""), file=f)
    print(file=f)
    if rows is not None:
        sh, sb = summary_rows(rows)
        print("| " + " | ".join(sh) + " |", file=f)
        print("|" + " --- |" * len(sh), file=f)
        for b in sb:
            print("| " + " | ".join(b) + " |", file=f)
        print(file=f)
        print("All rows:", file=f)
        print(file=f)
    print("| " + " | ".join(head) + " |", file=f)
    print("|" + " --- |" * len(head), file=f)
    for b in body:
        print("| " + " | ".join(str(c) for c in b) + " |", file=f)
    print(file=f)
    print("Seconds per run (stat: min or median of the timed runs, warm-up excluded); "
          "GFLOP/s with unet3d's FLOP counts for every column (training: 3× the forward "
          "FLOP); u/peer = peer seconds ÷ unet3d seconds (above 1: unet3d faster). "
          "unet3d FMA peak in this run: %s GFLOP/s." % fmt_g(meta.get("unet3d_peak_gflops")), file=f)


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unet3d", default="build/unet3d", help="the unet3d binary (default build/unet3d)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny shapes (bench --quick, the small preset at 44^3): a smoke test")
    ap.add_argument("--only", help="comma-separated row ids or substrings (e.g. "
                    "conv3d_fwd_3to32,train_small,infer_paper)")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per conv row (default 5)")
    ap.add_argument("--iters", type=int, default=3, help="timed training iterations / tiles (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="peer threads (default: all %d cores)" % os.cpu_count())
    ap.add_argument("--json", dest="json_out",
                    help="JSON output file (default: compare_peers.json beside the unet3d binary)")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-openvino", action="store_true")
    a = ap.parse_args()

    torch, torch_why = import_torch(a.no_torch)
    ov, ov_why = import_openvino(a.no_openvino)
    binary = a.unet3d
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        sys.exit("compare_peers: no unet3d binary at %s (--unet3d PATH)" % binary)
    if not a.json_out:
        a.json_out = os.path.join(os.path.dirname(os.path.abspath(binary)), "compare_peers.json")

    only = [s for s in (a.only or "").split(",") if s]
    want = lambda rid: not only or any(s == rid or s in rid for s in only)  # noqa: E731

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": "%s, %d cores (%s)" % (cpu_model(), os.cpu_count(), ", ".join(cpu_flags())),
        "host": platform.node(), "python": platform.python_version(),
        "unet3d": unet3d_version(binary), "pocl": pocl_version(),
        "unet3d_compute_units": None,
        "threads": a.threads, "quick": a.quick, "reps": a.reps, "iters": a.iters,
        "torch": {}, "openvino": {}, "skipped": [], "notes": [],
    }
    meta["unet3d_device"], meta["unet3d_compute_units"] = unet3d_device(binary)
    if torch is None:
        meta["skipped"].append("PyTorch: %s" % torch_why)
    else:
        meta["torch"] = torch_setup(torch, a.threads)
    if ov is None:
        meta["skipped"].append("OpenVINO: %s" % ov_why)
    else:
        core, props = ov_core(ov, a.threads)
        meta["openvino"] = {"version": ov.__version__, "properties": props}
    for s in meta["skipped"]:
        print("compare_peers: skipping %s" % s, file=sys.stderr)

    rows = []
    failed = False

    def peer(rid, name, fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - report and go on
            msg = "%s %s: %s: %s" % (name, rid, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            print("compare_peers: " + msg, file=sys.stderr)
            meta["notes"].append(msg)
            return None

    # ---- presets: architecture, parameter and FLOP checks
    cfgs = {}
    for preset in ("paper", "small"):
        c = unet3d_info(binary, preset)
        if not c:
            print("compare_peers: `unet3d info --preset %s` unreadable" % preset, file=sys.stderr)
            failed = True
            continue
        cfgs[preset] = c
        if torch is not None:
            pc = param_counts(torch, torch_unet(torch, c))
            c["torch_params"] = list(pc)
            ok = pc == (c["params_paper_count"], c["params_with_bn_affine"])
            msg = "%s preset: parameters unet3d %d / %d, PyTorch module %d / %d (without / with BN scale,shift): %s" % (
                preset, c["params_paper_count"], c["params_with_bn_affine"], pc[0], pc[1],
                "match" if ok else "MISMATCH")
            print("compare_peers: " + msg, file=sys.stderr)
            meta["notes"].append(msg)
        else:
            meta["notes"].append("%s preset: parameter count not checked (needs PyTorch)" % preset)

    # ---- conv rows
    opnames = [n for n in op_row_names() if want(n)]
    if opnames:
        print("unet3d bench (conv rows, peak) ...", file=sys.stderr)
        args = ["bench", "--json", "--only", ",".join(opnames), "--reps", str(a.reps)]
        if a.quick:
            args.append("--quick")
        try:
            bj = unet3d_json(binary, args, "unet3d bench")
        except RuntimeError as e:
            print("compare_peers: %s" % e, file=sys.stderr)
            meta["notes"].append(str(e))
            failed, bj = True, None
        if bj:
            meta["unet3d_peak_gflops"] = bj.get("peak_gflops")
            meta["unet3d_peak_config"] = bj.get("peak_config")
            meta["unet3d_peak_theoretical_gflops"] = bj.get("peak_theoretical_gflops")
            meta["unet3d_device"] = bj.get("device") or meta["unet3d_device"]
            if bj.get("above_peak"):
                meta["notes"].append("unet3d rows above its measured peak: %s" % bj["above_peak"])
            by_shape = {}
            for op in bj.get("ops", []):
                sh = parse_shape(op["shape"])
                if not sh:
                    continue
                m = re.match(r"(conv3d|upconv)_(fwd|bwd_data|bwd_weight)_(.*)", op["name"])
                key = (m.group(1), m.group(3))
                r = {"id": op["name"], "shape": op["shape"], "stat": "median_s", "gflop": op_flops(sh) * 1e-9,
                     "unet3d": {"median_s": op["ms"] * 1e-3, "gflops": op.get("gflops"),
                                "runs": op.get("reps"), "config": op.get("config")} if op["status"] == "ok"
                     else None}
                if op["status"] != "ok":
                    meta["notes"].append("unet3d %s: %s %s" % (op["name"], op["status"], op.get("note", "")))
                if op.get("gflops") and op["ms"]:
                    mine = op_flops(sh) / (op["ms"] * 1e-3) * 1e-9
                    if abs(mine / op["gflops"] - 1) > 0.01:
                        meta["notes"].append("FLOP count differs from unet3d's for %s: %.3g G here, "
                                             "unet3d's rate implies %.3g G" % (op["name"], op_flops(sh) * 1e-9,
                                                                               op["gflops"] * op["ms"] * 1e-3))
                rows.append(r)
                by_shape.setdefault(key, (sh, []))[1].append((m.group(2), r))
            for (fam, sfx), (sh, rs) in by_shape.items():
                passes = {p for p, _ in rs}
                if torch is not None:
                    print("PyTorch %s %s ..." % (fam, sfx), file=sys.stderr)
                    tr = peer(fam + "_" + sfx, "PyTorch", lambda: torch_conv_rows(torch, sh, a.reps, passes))
                    for p, r in rs:
                        if tr and p in tr:
                            r["torch"] = tr[p]
                if ov is not None and "fwd" in passes:
                    print("OpenVINO %s %s forward ..." % (fam, sfx), file=sys.stderr)
                    o = peer(fam + "_fwd_" + sfx, "OpenVINO", lambda: ov_conv_row(ov, core, props, sh, a.reps))
                    for p, r in rs:
                        if p == "fwd" and o:
                            r["openvino"] = o
                            meta["openvino"].setdefault("compiled", o.get("compiled"))

    # ---- training iterations
    train = [("paper", None), ("small", None)]
    if a.quick:
        train = [("small", [44, 44, 44])]
        meta["notes"].append("--quick: the paper preset's rows are left out (its smallest input is 92^3)")
    for preset, inp in train:
        rid = "train_" + preset
        if not want(rid) or preset not in cfgs:
            continue
        print("unet3d bench --train %s ..." % preset, file=sys.stderr)
        args = ["bench", "--json", "--train", preset, "--iters", str(a.iters)]
        if inp:
            args += ["--input", "x".join(map(str, inp))]
        try:
            tj = unet3d_json(binary, args, "unet3d bench --train " + preset)
        except RuntimeError as e:
            print("compare_peers: %s" % e, file=sys.stderr)
            meta["notes"].append(str(e))
            failed = True
            continue
        dhw = tj["input_dhw"]
        tr = net_trace(cfgs[preset], dhw)
        gflop = 3 * tr[1] * 1e-9 if tr else None
        if tr and tr[0] != tj["output_dhw"]:
            meta["notes"].append("%s: output size %s here, %s in unet3d" % (rid, tr[0], tj["output_dhw"]))
        r = {"id": rid, "shape": "%s -> %s" % ("x".join(map(str, dhw)), "x".join(map(str, tj["output_dhw"]))),
             "stat": "min_s", "gflop": gflop,
             "unet3d": {"min_s": tj["seconds_per_iteration"], "runs": a.iters, "share": tj.get("share")}}
        if torch is not None:
            print("PyTorch training iteration, %s ..." % preset, file=sys.stderr)
            t = peer(rid, "PyTorch", lambda: torch_train(torch, cfgs[preset], dhw, a.iters))
            if t:
                if t["output_dhw"] != tj["output_dhw"]:
                    meta["notes"].append("%s: PyTorch output %s, unet3d %s" % (rid, t["output_dhw"], tj["output_dhw"]))
                r["torch"] = t
        rows.append(r)

    # ---- inference tile
    infer = [("small", [44, 44, 44])] if a.quick else [("paper", None)]
    for preset, inp in infer:
        rid = "infer_" + preset
        if not want(rid) or preset not in cfgs:
            continue
        print("unet3d bench --infer %s ..." % preset, file=sys.stderr)
        args = ["bench", "--json", "--infer", preset, "--iters", str(a.iters)]
        if inp:
            args += ["--input", "x".join(map(str, inp))]
        try:
            ij = unet3d_json(binary, args, "unet3d bench --infer " + preset)
        except RuntimeError as e:
            print("compare_peers: %s" % e, file=sys.stderr)
            meta["notes"].append(str(e))
            failed = True
            continue
        dhw = ij["input_dhw"]
        tr = net_trace(cfgs[preset], dhw)
        gflop = ij["gflop_per_tile"]
        if tr:
            same = abs(tr[1] * 1e-9 - gflop) <= 0.01 + 1e-4 * gflop
            meta["notes"].append("%s: forward FLOP %.2f G from the architecture here, %.2f G in unet3d: %s" % (
                rid, tr[1] * 1e-9, gflop, "match" if same else "MISMATCH"))
            if tr[0] != ij["output_dhw"]:
                meta["notes"].append("%s: output size %s here, %s in unet3d" % (rid, tr[0], ij["output_dhw"]))
        r = {"id": rid, "shape": "%s -> %s" % ("x".join(map(str, dhw)), "x".join(map(str, ij["output_dhw"]))),
             "stat": "min_s", "gflop": gflop, "unet3d": {"min_s": ij["seconds_per_tile"], "runs": a.iters}}
        tmodel = None
        if torch is not None:
            tmodel = torch_eval_model(torch, cfgs[preset])
            print("PyTorch inference tile, %s ..." % preset, file=sys.stderr)
            t = peer(rid, "PyTorch", lambda: torch_infer(torch, tmodel, cfgs[preset], dhw, a.iters))
            if t:
                r["torch"] = t
        if ov is not None:
            if tmodel is None:
                meta["notes"].append("OpenVINO %s: needs PyTorch to build the network (convert_model)" % rid)
            else:
                print("OpenVINO inference tile, %s (convert_model) ..." % preset, file=sys.stderr)
                o = peer(rid, "OpenVINO", lambda: ov_infer(ov, core, props, torch, tmodel, cfgs[preset], dhw, a.iters))
                if o:
                    r["openvino"] = o
                    meta["openvino"]["compiled"] = o.get("compiled")
                    meta["notes"].append("%s: OpenVINO through %s; its logits vs PyTorch eval: max |diff| %.2e" % (
                        rid, o["conversion"], o["max_abs_diff_vs_torch"]))
        rows.append(r)

    head, body = build_table(rows)
    print()
    print("unet3d vs peers, %s" % meta["date"])
    print("machine: %s" % meta["machine"])
    print("unet3d: %s (device: %s; FMA peak %s GFLOP/s)" % (
        meta["unet3d"], meta.get("unet3d_device", "?"), fmt_g(meta.get("unet3d_peak_gflops"))))
    print("PoCL: %s" % meta["pocl"])
    print("threads: PyTorch %d, OpenVINO %d, unet3d the OpenCL device's %s compute units" % (
        meta["threads"], meta["threads"], meta["unet3d_compute_units"] or "?"))
    print("PyTorch: %s" % (("%s, %d threads, oneDNN %s" % (meta["torch"]["version"], meta["torch"]["threads"],
                                                            "on" if meta["torch"]["mkldnn"] else "off"))
                           if meta["torch"] else "skipped"))
    print("OpenVINO: %s" % (("%s, CPU plugin, %s" % (meta["openvino"]["version"],
                                                      meta["openvino"].get("compiled") or meta["openvino"]["properties"]))
                            if meta["openvino"] else "skipped"))
    print("ratio u/peer = peer s / unet3d s (> 1: unet3d faster); stat: min or median of the timed runs")
    print()
    print_text(head, body)
    for n in meta["notes"]:
        print("note: %s" % n)
    for s in meta["skipped"]:
        print("skipped: %s" % s)
    if a.markdown:
        print()
        print_markdown(meta, head, body, rows=rows)
    with open(a.json_out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=str)
    print("\nwrote %s" % a.json_out, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
