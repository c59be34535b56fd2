#!/usr/bin/env python3
"""The development set's accuracy table (issue #15).

Every default of unet3d is to be chosen on a development set of kinds of
structure, against a plain PyTorch U-Net (tools/torch_reference.py) trained in
the same wall time on the same sparse labels. This script builds the set,
runs the protocols with each arm, one run after another, and prints one
markdown table.

The set (built into --work, files reused when they exist; the real data are
read from --shared and never copied):
  nuclei      1135_image/1135_labels, sparse 5,5,3 slices (z,y,x); fully
              automatic: train on 1135, segment 1136
  boundaries  thin walls (`unet3d boundaries` of 1135_instances / 1136) on
              1135_image, sparse 3,5,5; target 1136
  membranes   `unet3d synth --kind membranes --seed 1`, sparse 3,5,5; target
              seed 2
  tubules     `unet3d synth --kind tubules --seed 1`, sparse 3,5,5; target
              seed 2
  brats       pat0003 (2 channels, classes 0..4), sparse 5,5,5; fully
              automatic: train on pat0003, pat0004, pat0005, segment pat0006

Protocols:
  semi  `unet3d densify --image I --labels SPARSE --out SEG` (or the reference
        on the same pair), scored by `unet3d evaluate --exclude SPARSE` (only
        the voxels not annotated); for unet3d arms densify's held-out estimate
        is parsed and put beside the true IoU.
  auto  `unet3d train` on the sparse labels of the training volumes, `unet3d
        predict` on the target (or the reference with --predict-image),
        scored by `unet3d evaluate` against the target's dense truth.

Every run is scored by the same `unet3d evaluate`. Foreground IoU = the mean
IoU over classes 1..K-1 present in truth or prediction.

Arms: `default` (unet3d with no options), every `--arm NAME=OPTIONS`
(OPTIONS split as a shell would, passed to densify/train; `--arm
default=...` changes the default arm) and `pytorch` (the reference; `--arm
pytorch=OPTIONS` passes options to it), unless --no-pytorch/--no-default.

Usage:
    nice -n 10 python3 tools/devset.py --minutes 5 --out-md devset.md \\
        --out-json devset.json --note "nothing else running"
    # quick check of the plumbing (numbers meaningless)
    python3 tools/devset.py --iterations 3 --only membranes,brats

stdlib only; needs the unet3d binary (--unet3d, default build/unet3d, else
on PATH) and, for the reference, a python with torch, numpy and tifffile
(--python). The device is unet3d's default (set UNET3D_DEVICE to choose).
"""
import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOLUMES = ("nuclei", "boundaries", "membranes", "tubules", "brats")
PROTOCOLS = ("semi", "auto")
PYTORCH = "pytorch"


def say(msg):
    print("devset: " + msg, file=sys.stderr, flush=True)


def die(msg):
    sys.exit("devset: " + msg)


class RunError(Exception):
    pass


def last_line(text):
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run_training(rec, cmd, opts, base, timeout):
    """A unet3d training command with the arm's options and a loss log
    (for the iterations done); records it and its progress in rec."""
    if "--log" not in opts:
        cmd = cmd + ["--log", base + ".csv"]
    cmd = cmd + opts
    rec["commands"].append(cmd)
    out, err, secs = run_cmd(cmd, base, timeout)
    rec["iterations"], rec["train_seconds"] = unet3d_progress(base + ".csv", err)
    return out, err, secs


def run_cmd(cmd, log_base=None, timeout=None):
    """Runs cmd; (stdout, stderr, seconds). RunError (with the last line of
    stderr) when it fails. Output kept in log_base.out/.err when given."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, errors="replace", timeout=timeout)
    except FileNotFoundError as e:
        raise RunError("%s: %s" % (cmd[0], e))
    except subprocess.TimeoutExpired as e:
        raise RunError("%s: timed out after %.0f s" % (os.path.basename(cmd[0]), e.timeout))
    secs = time.monotonic() - t0
    if log_base:
        with open(log_base + ".out", "a") as f:
            f.write("$ %s\n%s" % (" ".join(shlex.quote(c) for c in cmd), p.stdout))
        with open(log_base + ".err", "a") as f:
            f.write("$ %s\n%s" % (" ".join(shlex.quote(c) for c in cmd), p.stderr))
    if p.returncode != 0:
        line = last_line(p.stderr) or last_line(p.stdout) or "no output"
        raise RunError("%s exited %d: %s" % (os.path.basename(cmd[0]), p.returncode, line))
    return p.stdout, p.stderr, secs


# --------------------------------------------------------------------------
# The set

class Builder:
    """Makes the set's derived files in --work, once (kept when present)."""

    def __init__(self, unet3d, work, shared):
        self.unet3d, self.work, self.shared = unet3d, work, shared

    def src(self, *parts):
        p = os.path.join(self.shared, *parts)
        if not os.path.exists(p):
            raise RunError("missing %s" % p)
        return p

    def make(self, outs, args):
        """Runs `unet3d ARGS` writing every file of outs (its paths in args
        as given) to a temporary name first, renamed when it succeeds."""
        if all(os.path.exists(o) for o in outs):
            return
        tmp = {o: o[:-4] + ".tmp.tif" for o in outs}
        cmd = [self.unet3d] + [tmp.get(a, a) for a in args]
        os.makedirs(os.path.dirname(outs[0]), exist_ok=True)
        say("building " + ", ".join(outs))
        try:
            run_cmd(cmd)
        except RunError:
            for t in tmp.values():
                if os.path.exists(t):
                    os.remove(t)
            raise
        for o, t in tmp.items():
            os.replace(t, o)

    def sparse(self, vol, name, dense, slices):
        out = os.path.join(self.work, vol, "%s_sparse%s.tif" % (name, slices.replace(",", "")))
        self.make([out], ["sparsify", "--labels", dense, "--slices", slices, "--out", out])
        return out

    def boundaries(self, name):
        out = os.path.join(self.work, "boundaries", "%s_boundaries.tif" % name)
        inst = self.src("nuclei", "%s_instances.tif" % name)
        self.make([out], ["boundaries", "--instances", inst, "--out", out])
        return out

    def synth(self, kind, seed):
        img = os.path.join(self.work, kind, "seed%d_image.tif" % seed)
        lab = os.path.join(self.work, kind, "seed%d_labels.tif" % seed)
        self.make([img, lab], ["synth", "--kind", kind, "--seed", str(seed),
                               "--out", img, "--labels", lab])
        return img, lab

    def task(self, vol, protocol):
        """semi: {image, sparse, truth}; auto: {train: [(image, sparse)],
        target, truth}."""
        if vol == "nuclei":
            img, dense = self.src("nuclei", "1135_image.tif"), self.src("nuclei", "1135_labels.tif")
            sp = self.sparse(vol, "1135", dense, "5,5,3")
            if protocol == "semi":
                return {"image": img, "sparse": sp, "truth": dense}
            return {"train": [(img, sp)], "target": self.src("nuclei", "1136_image.tif"),
                    "truth": self.src("nuclei", "1136_labels.tif")}
        if vol == "boundaries":
            img, dense = self.src("nuclei", "1135_image.tif"), self.boundaries("1135")
            sp = self.sparse(vol, "1135", dense, "3,5,5")
            if protocol == "semi":
                return {"image": img, "sparse": sp, "truth": dense}
            return {"train": [(img, sp)], "target": self.src("nuclei", "1136_image.tif"),
                    "truth": self.boundaries("1136")}
        if vol in ("membranes", "tubules"):
            img, dense = self.synth(vol, 1)
            sp = self.sparse(vol, "seed1", dense, "3,5,5")
            if protocol == "semi":
                return {"image": img, "sparse": sp, "truth": dense}
            timg, tlab = self.synth(vol, 2)
            return {"train": [(img, sp)], "target": timg, "truth": tlab}
        if vol == "brats":
            def pair(pat):
                img = self.src("brats", "%s_image.tif" % pat)
                dense = self.src("brats", "%s_labels.tif" % pat)
                return img, dense, self.sparse(vol, pat, dense, "5,5,5")
            img, dense, sp = pair("pat0003")
            if protocol == "semi":
                return {"image": img, "sparse": sp, "truth": dense}
            pairs = [pair(p) for p in ("pat0004", "pat0005")]
            return {"train": [(img, sp)] + [(i, s) for i, _, s in pairs],
                    "dense": [dense] + [d for _, d, _ in pairs],
                    "target": self.src("brats", "pat0006_image.tif"),
                    "truth": self.src("brats", "pat0006_labels.tif")}
        raise ValueError(vol)

    def classes(self, dense):
        """The number of classes of dense labels (largest label + 1), by
        `unet3d evaluate` of them against themselves."""
        out, _, _ = run_cmd([self.unet3d, "evaluate", "--prediction", dense, "--truth",
                             dense, "--json"])
        try:
            return int(json.loads(out)["classes"])
        except (ValueError, KeyError, TypeError):
            raise RunError("evaluate %s: no class count" % dense)

    def task_with_classes(self, vol, protocol):
        """task(), and for auto the class count `unet3d train` needs
        (--classes: it has no other way to know), from the training
        volumes' dense labels."""
        t = self.task(vol, protocol)
        if protocol == "auto":
            dense = t.pop("dense", None) or [self.task(vol, "semi")["truth"]]
            t["classes"] = max(self.classes(d) for d in dense)
        return t


# --------------------------------------------------------------------------
# Parsing the tools' output

ESTIMATE_RE = re.compile(
    r"estimated IoU per class \(from (\d+) held-out annotated slices: ([^)]*)\):"
    r"((?:\s+\d+\s+\S+)+?);\s*mean foreground\s+(\S+)")
ITER_RE = re.compile(r"^iter\s+(\d+)", re.M)


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def parse_estimate(text):
    m = ESTIMATE_RE.search(text)
    if not m:
        return None
    toks = m.group(3).split()
    per = {int(toks[i]): num(toks[i + 1]) for i in range(0, len(toks) - 1, 2)}
    it = re.search(r"model of iteration (\d+)", text[m.end():m.end() + 200])
    return {"held_out": int(m.group(1)), "slices": m.group(2).split(),
            "iou": [per[c] for c in sorted(per)],
            "mean_fg": num(m.group(4)),
            "iteration": int(it.group(1)) if it else None}


def unet3d_progress(log_csv, stderr):
    """(iterations, training seconds) from the --log CSV (rows
    iteration,loss,elapsed,...), else the last `iter N` progress line."""
    try:
        with open(log_csv) as f:
            rows = [ln.split(",") for ln in f.read().splitlines()]
        rows = [r for r in rows if r and r[0].strip().isdigit()]
        if rows:
            return int(rows[-1][0]), num(rows[-1][2]) if len(rows[-1]) > 2 else None
    except OSError:
        pass
    its = ITER_RE.findall(stderr)
    return (int(its[-1]) if its else None), None


def reference_summary(stdout):
    for ln in reversed(stdout.splitlines()):
        ln = ln.strip()
        if ln.startswith("{"):
            try:
                return json.loads(ln)
            except ValueError:
                return None
    return None


def fg_iou(ev):
    """Mean IoU over classes 1..K-1 present in truth or prediction."""
    iou, tp, fp, fn = ev.get("iou", []), ev.get("tp"), ev.get("fp"), ev.get("fn")
    vals = []
    for c in range(1, len(iou)):
        if tp is not None and tp[c] + fp[c] + fn[c] == 0:
            continue
        if iou[c] is not None:
            vals.append(iou[c])
    return sum(vals) / len(vals) if vals else None


# --------------------------------------------------------------------------
# Runs

def budget_args(args):
    if args.iterations:
        return ["--iterations", str(args.iterations)]
    return ["--minutes", "%g" % args.minutes]


def run_one(args, arm, opts, vol, protocol, seed, task, runs_dir):
    rid = "%s-%s-%s-s%d" % (vol, protocol, arm, seed)
    base = os.path.join(runs_dir, rid)
    for ext in (".out", ".err", ".csv", ".seg.tif", ".u3d"):
        if os.path.exists(base + ext):
            os.remove(base + ext)
    seg = base + ".seg.tif"
    seed_args = ["--seed", str(seed)] if args.seeds > 1 else []
    rec = {"id": rid, "arm": arm, "options": opts, "volume": vol, "protocol": protocol,
           "seed": seed, "budget": budget_args(args), "commands": []}
    timeout = None if args.iterations else args.minutes * 60 * 3 + 900
    t0 = time.monotonic()
    try:
        if arm == PYTORCH:
            cmd = [args.python, os.path.join(REPO, "tools", "torch_reference.py")]
            if protocol == "semi":
                cmd += ["--image", task["image"], "--labels", task["sparse"]]
            else:
                for img, sp in task["train"]:
                    cmd += ["--image", img, "--labels", sp]
                cmd += ["--predict-image", task["target"]]
            cmd += budget_args(args) + seed_args + ["--out", seg] + opts
            rec["commands"].append(cmd)
            out, err, secs = run_cmd(cmd, base, timeout)
            summ = reference_summary(out)
            rec["reference"] = summ
            rec["iterations"] = summ.get("iterations") if summ else None
            rec["train_seconds"] = summ.get("seconds") if summ else None
        elif protocol == "semi":
            cmd = [args.unet3d, "densify", "--image", task["image"], "--labels",
                   task["sparse"], "--out", seg] + budget_args(args) + seed_args
            out, err, secs = run_training(rec, cmd, opts, base, timeout)
            rec["estimate"] = parse_estimate(out + "\n" + err)
        else:
            model = base + ".u3d"
            cmd = [args.unet3d, "train"]
            for img, sp in task["train"]:
                cmd += ["--image", img, "--labels", sp]
            cmd += ["--model", model] + budget_args(args) + seed_args
            if "--classes" not in opts:
                cmd += ["--classes", str(task["classes"])]
            out, err, secs = run_training(rec, cmd, opts, base, timeout)
            cmd = [args.unet3d, "predict", "--model", model, "--image", task["target"],
                   "--out", seg]
            rec["commands"].append(cmd)
            _, _, psecs = run_cmd(cmd, base, timeout)
            rec["predict_seconds"] = round(psecs, 3)
        rec["wall_seconds"] = round(time.monotonic() - t0, 3)
        cmd = [args.unet3d, "evaluate", "--prediction", seg, "--truth", task["truth"], "--json"]
        if protocol == "semi":
            cmd += ["--exclude", task["sparse"]]
        rec["commands"].append(cmd)
        out, _, _ = run_cmd(cmd, base)
        try:
            ev = json.loads(out)
        except ValueError:
            raise RunError("evaluate: no JSON on stdout")
        rec["evaluate"] = ev
        rec["iou"] = ev.get("iou")
        rec["fg_iou"] = fg_iou(ev)
        est = rec.get("estimate")
        if est and est.get("mean_fg") is not None and rec["fg_iou"] is not None:
            rec["estimate_minus_true"] = est["mean_fg"] - rec["fg_iou"]
        rec["error"] = None
    except RunError as e:
        rec.setdefault("wall_seconds", round(time.monotonic() - t0, 3))
        rec["error"] = str(e)
    rec["commands"] = [" ".join(shlex.quote(c) for c in cmd) for cmd in rec["commands"]]
    return rec


# --------------------------------------------------------------------------
# The header and the table

def capture(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, errors="replace", timeout=120)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def machine():
    model, cpus = None, None
    out = capture(["lscpu"]) or ""
    for ln in out.splitlines():
        k, _, v = ln.partition(":")
        if k.strip() == "Model name" and not model:
            model = v.strip()
        elif k.strip() == "CPU(s)":
            cpus = v.strip()
    return "%s, %s cores" % (model or "unknown CPU", cpus or os.cpu_count())


def meta(args, arms):
    ver = capture([args.unet3d, "version"])
    dev = None
    for ln in (capture([args.unet3d, "devices"]) or "").splitlines():
        if ln.startswith("opencl") and "|" in ln:
            parts = ln.split(None, 2)
            dev = " | ".join(f.strip() for f in parts[-1].split("|")[:3])
            break
    torch = None
    if any(a == PYTORCH for a, _ in arms):
        torch = capture([args.python, "-c", "import torch; print(torch.__version__)"])
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "budget": ("%d iterations" % args.iterations) if args.iterations
            else ("%g minutes" % args.minutes),
            "machine": machine(), "device": dev or os.environ.get("UNET3D_DEVICE"),
            "unet3d": ver, "unet3d_binary": args.unet3d, "torch": torch,
            "python": args.python, "note": args.note, "seeds": args.seeds,
            "arms": [{"name": a, "options": o} for a, o in arms]}


def stat(vals):
    """(mean, half range) of the numbers in vals, None if there are none."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return sum(vals) / len(vals), (max(vals) - min(vals)) / 2


def fmt(s, digits=3, signed=False):
    if s is None:
        return "–"
    m, h = s
    f = "%+.*f" if signed else "%.*f"
    txt = f % (digits, m)
    return txt + (" ± %.*f" % (digits, h) if h > 0 else "")


def table(m, arms, records, rows):
    names = [a for a, _ in arms]
    est_arm = "default" if "default" in names else next(
        (a for a in names if a != PYTORCH), None)
    lines = ["## unet3d development set", "",
             "- budget: %s per run%s" % (m["budget"], (", %d seeds (mean ± half range)"
                                                      % m["seeds"]) if m["seeds"] > 1 else ""),
             "- machine: %s%s" % (m["machine"], "; unet3d device: %s" % m["device"]
                                  if m["device"] else ""),
             "- date: %s" % m["date"],
             "- unet3d: %s; torch: %s" % (m["unet3d"] or "?", m["torch"] or "not run"),
             "- arms: " + "; ".join("`%s`%s" % (a, (": `%s`" % " ".join(o)) if o else
                                    (" (plain PyTorch U-Net, tools/torch_reference.py)"
                                     if a == PYTORCH else " (no options)"))
                                    for a, o in arms),
             "- also running: %s" % (m["note"] or "not stated"),
             "- cells: foreground IoU (mean over classes 1..K-1 present) on the "
             "voxels not annotated (semi) or the target volume (auto), iterations "
             "done in parentheses; estimate: densify's held-out estimate of the "
             "foreground IoU (issue #15 wants |estimate − true| ≤ 0.05)", ""]
    head = ["volume", "protocol"] + names
    if est_arm:
        head += ["estimate (%s)" % est_arm, "estimate − true"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    for vol, prot in rows:
        cells = [vol, prot]
        for a in names:
            rs = [r for r in records if (r["volume"], r["protocol"], r["arm"]) == (vol, prot, a)]
            if not rs:
                cells.append("")
            elif any(r.get("error") for r in rs):
                cells.append("error")
            else:
                it = stat([r.get("iterations") for r in rs])
                cells.append(fmt(stat([r["fg_iou"] for r in rs])) +
                             (" (%d)" % round(it[0]) if it else ""))
        if est_arm:
            rs = [r for r in records if (r["volume"], r["protocol"], r["arm"]) ==
                  (vol, prot, est_arm) and not r.get("error")]
            if prot == "semi" and rs:
                cells.append(fmt(stat([(r.get("estimate") or {}).get("mean_fg") for r in rs])))
                cells.append(fmt(stat([r.get("estimate_minus_true") for r in rs]), signed=True))
            else:
                cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    errs = [r for r in records if r.get("error")]
    if errs:
        lines += ["", "Errors:", ""]
        lines += ["- %s: %s" % (r["id"], r["error"]) for r in errs]
    return "\n".join(lines) + "\n"


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Build the development set, run every arm on it (one run after "
                    "another) and print the accuracy table (issue #15).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="e.g. nice -n 10 python3 tools/devset.py --minutes 5 --out-md devset.md")
    ap.add_argument("--unet3d", help="the unet3d binary (default build/unet3d, else on PATH)")
    ap.add_argument("--python", default="/work/venv-peers/bin/python",
                    help="python with torch for tools/torch_reference.py (default %(default)s)")
    ap.add_argument("--work", default="devset-work",
                    help="where the set and the runs go (default %(default)s/)")
    ap.add_argument("--shared", default=os.path.join("..", "shared", "data"),
                    help="the real data: nuclei/ and brats/ (default %(default)s)")
    ap.add_argument("--arm", action="append", default=[], metavar="NAME=OPTIONS",
                    help="an arm: options to densify/train (repeatable)")
    ap.add_argument("--no-default", action="store_true", help="no `default` arm")
    ap.add_argument("--no-pytorch", action="store_true", help="no PyTorch reference arm")
    b = ap.add_mutually_exclusive_group()
    b.add_argument("--minutes", type=float, default=5, help="per run (default 5)")
    b.add_argument("--iterations", type=int, help="per run instead of --minutes (testing)")
    ap.add_argument("--only", help="volumes, comma separated (default all: %s)" % ",".join(VOLUMES))
    ap.add_argument("--protocols", default="semi,auto", help="default %(default)s")
    ap.add_argument("--seeds", type=int, default=1,
                    help="seeds 1..N (N > 1: --seed S to each run; mean ± half range)")
    ap.add_argument("--note", help="what else was running on the machine")
    ap.add_argument("--out-md", help="also write the table here")
    ap.add_argument("--out-json", help="every run's record (written after each run)")
    args = ap.parse_args(argv)

    if args.iterations is not None and args.iterations < 1:
        ap.error("--iterations must be at least 1")
    if not args.iterations and not args.minutes > 0:
        ap.error("--minutes must be positive")
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    args.volumes = [v.strip() for v in (args.only or ",".join(VOLUMES)).split(",") if v.strip()]
    for v in args.volumes:
        if v not in VOLUMES:
            ap.error("--only: unknown volume %r (%s)" % (v, ", ".join(VOLUMES)))
    args.protocol_list = [p.strip() for p in args.protocols.split(",") if p.strip()]
    for p in args.protocol_list:
        if p not in PROTOCOLS:
            ap.error("--protocols: unknown protocol %r (semi, auto)" % p)

    arms = [] if args.no_default else [("default", [])]
    for spec in args.arm:
        name, eq, opts = spec.partition("=")
        name = name.strip()
        if not name or not re.match(r"^[A-Za-z0-9_.+-]+$", name):
            ap.error("--arm %r: NAME=OPTIONS with a name of letters, digits, _.+-" % spec)
        try:
            opts = shlex.split(opts)
        except ValueError as e:
            ap.error("--arm %r: %s" % (spec, e))
        arms = [a for a in arms if a[0] != name] + [(name, opts)]
    if not args.no_pytorch and PYTORCH not in [a for a, _ in arms]:
        arms.append((PYTORCH, []))
    if args.no_pytorch:
        arms = [a for a in arms if a[0] != PYTORCH]
    if not arms:
        ap.error("no arms to run")
    args.arms = arms

    if not args.unet3d:
        cand = os.path.join(REPO, "build", "unet3d")
        args.unet3d = cand if os.access(cand, os.X_OK) else shutil.which("unet3d")
        if not args.unet3d:
            ap.error("no unet3d binary: build it or give --unet3d")
    args.unet3d = os.path.abspath(args.unet3d) if os.sep in args.unet3d else args.unet3d
    return args


def main(argv=None):
    args = parse_args(argv)
    arms = args.arms
    work = os.path.abspath(args.work)
    runs_dir = os.path.join(work, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    m = meta(args, arms)
    say("%s per run; arms %s; unet3d %s" % (m["budget"], ", ".join(a for a, _ in arms),
                                            m["unet3d"] or "?"))
    builder = Builder(args.unet3d, work, os.path.abspath(args.shared))
    rows = [(v, p) for v in args.volumes for p in args.protocol_list]
    records = []

    def save():
        if args.out_json:
            write_atomic(args.out_json, json.dumps({"meta": m, "runs": records}, indent=1) + "\n")

    for vol, prot in rows:
        try:
            task = builder.task_with_classes(vol, prot)
        except RunError as e:
            say("%s %s: the set could not be built: %s" % (vol, prot, e))
            for seed in range(1, args.seeds + 1):
                for arm, opts in arms:
                    records.append({"id": "%s-%s-%s-s%d" % (vol, prot, arm, seed), "arm": arm,
                                    "options": opts, "volume": vol, "protocol": prot,
                                    "seed": seed, "error": "building the set: %s" % e})
            save()
            continue
        for seed in range(1, args.seeds + 1):
            for arm, opts in arms:
                say("%s %s %s seed %d ..." % (vol, prot, arm, seed))
                rec = run_one(args, arm, opts, vol, prot, seed, task, runs_dir)
                records.append(rec)
                if rec["error"]:
                    say("  error: %s" % rec["error"])
                else:
                    say("  foreground IoU %.4f, %s iterations, %.1f s%s" % (
                        rec["fg_iou"] if rec["fg_iou"] is not None else float("nan"),
                        rec.get("iterations"), rec["wall_seconds"],
                        "; estimate %.4f" % rec["estimate"]["mean_fg"]
                        if rec.get("estimate") and rec["estimate"].get("mean_fg") is not None
                        else ""))
                save()
    md = table(m, arms, records, rows)
    sys.stdout.write(md)
    if args.out_md:
        write_atomic(args.out_md, md)
    save()
    return 1 if any(r.get("error") for r in records) and \
        all(r.get("error") for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
