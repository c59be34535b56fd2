#!/usr/bin/env python3
"""PyTorch fixtures for the Adam optimizer step (issue #15): one step of
torch.optim.Adam from a given state, with and without weight decay, at the
first step (bias corrections largest) and a later one.

Writes one folder per case (default data/golden/ in the repository, next
to the other fixtures the project generates; the format is
../shared/golden's, see its README.md): case.txt plus NAME.npy. The state
is set through the optimizer's state dict (step = step - 1, exp_avg,
exp_avg_sq), then opt.step() runs once in double precision from float32
inputs; the results are stored as float32.

    python3 tools/make_golden_adam.py [--out DIR] [--seed S]

Needs torch and numpy. Deterministic for a seed.
"""
import argparse
import os
import sys

import numpy as np
import torch

CASES = [
    # name, lr, beta1, beta2, eps, weight_decay, step, fresh state
    ("adam_first_step", 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, True),
    ("adam_weight_decay", 1e-2, 0.9, 0.999, 1e-8, 1e-2, 7, False),
    ("adam_betas", 3e-3, 0.5, 0.9, 1e-6, 0.0, 250, False),
]


def case(out, rng, name, lr, b1, b2, eps, wd, step, fresh):
    n = (3, 5, 7, 11)  # any rank: the update is elementwise
    p = rng.uniform(-1, 1, size=n).astype(np.float32)
    g = rng.uniform(-1, 1, size=n).astype(np.float32)
    if fresh:
        m = np.zeros(n, np.float32)
        v = np.zeros(n, np.float32)
    else:
        m = (0.1 * rng.uniform(-1, 1, size=n)).astype(np.float32)
        # small second moments too: the eps and bias terms then matter
        v = (rng.uniform(0, 1, size=n) ** 4 * 0.01).astype(np.float32)
    w = torch.nn.Parameter(torch.from_numpy(p.astype(np.float64)))
    opt = torch.optim.Adam([w], lr=lr, betas=(b1, b2), eps=eps,
                           weight_decay=wd, foreach=False)
    w.grad = torch.from_numpy(g.astype(np.float64))
    if step > 1:
        # torch's Adam keeps step as a tensor; it is incremented before use
        opt.state[w]["step"] = torch.tensor(float(step - 1), dtype=torch.float64)
        opt.state[w]["exp_avg"] = torch.from_numpy(m.astype(np.float64))
        opt.state[w]["exp_avg_sq"] = torch.from_numpy(v.astype(np.float64))
    opt.step()
    st = opt.state[w]
    assert int(st["step"]) == step
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    tensors = {"param_in": p, "grad": g, "m_in": m, "v_in": v,
               "param_out": w.detach().numpy(),
               "m_out": st["exp_avg"].numpy(), "v_out": st["exp_avg_sq"].numpy()}
    for k, a in tensors.items():
        np.save(os.path.join(folder, k + ".npy"),
                np.ascontiguousarray(a.astype(np.float32)))
    with open(os.path.join(folder, "case.txt"), "w") as f:
        for k, v_ in [("op", "adam"), ("lr", repr(lr)), ("beta1", repr(b1)),
                      ("beta2", repr(b2)), ("eps", repr(eps)),
                      ("weight_decay", repr(wd)), ("step", step),
                      ("amsgrad", 0), ("maximize", 0),
                      ("note", "torch.optim.Adam, one step from the state "
                       "m_in, v_in after step-1 steps: g = grad + "
                       "weight_decay*param_in; m_out = beta1*m_in + "
                       "(1-beta1)*g; v_out = beta2*v_in + (1-beta2)*g^2; "
                       "param_out = param_in - lr/(1-beta1^step) * m_out / "
                       "(sqrt(v_out)/sqrt(1-beta2^step) + eps)")]:
            f.write(f"{k} {v_}\n")
        f.write("tensors " + " ".join(sorted(tensors)) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "data", "golden"))
    ap.add_argument("--seed", type=int, default=15)
    a = ap.parse_args()
    rng = np.random.Generator(np.random.PCG64(a.seed))
    for c in CASES:
        case(a.out, rng, *c)
        print("wrote", os.path.join(a.out, c[0]), file=sys.stderr)


if __name__ == "__main__":
    main()
