"""Generate golden reference values for tessera's optimiser, LR-schedule and
label-smoothing tests.

Produces ``test/fixtures/optim_goldens.json``: a record of what PyTorch's
optimisers and LR schedulers do over 20 steps, so the TypeScript tests can
replay it without Python.  Run from the repository root:

    /usr/bin/python3 scripts/make_optim_goldens.py

Only torch and the standard library are used.

Layout of the JSON file
-----------------------

``optim`` maps a case name (``adamw``, ``sgd_momentum``, ``sgd_nesterov``,
``adamw_warmup_cosine``, ``sgd_step``) to::

    {"optimizer": {type, lr, ..., "param_groups": [{"name": "w", "weight_decay": ...},
                                                   {"name": "b", "weight_decay": 0.0}]},
     "schedule":  {type, ...},
     "init":      {"w": [12 floats], "b": [4 floats]},
     "steps":     [{"lr", "grad_w", "grad_b", "w", "b"}, ... 20 of them]}

Two float32 parameters, ``w`` (shape [3, 4], weight decay as the case says)
and ``b`` (shape [4], always weight decay 0), each in its own param group.
With flat index i:

    w0[i] = sin(0.3*i + 1)          b0[i] = cos(0.7*i)

At step t (0-based) the gradient handed to the optimiser is

    grad_w[i] = sin(0.5*i + 0.9*t) + 0.1 * w_current[i]
    grad_b[i] = cos(0.4*i - 0.3*t)

where the closed-form sin/cos terms are evaluated in float64 and rounded to
float32, and ``+ 0.1 * w_current`` is done in float32 on the current
(float32) parameters: in TypeScript,
``fround(fround(sin(0.5*i + 0.9*t)) + fround(fround(0.1) * w[i]))``
reproduces grad_w bit for bit.  Each step records ``lr`` (the LR in effect for that
optimiser step, i.e. read before ``scheduler.step()``; both groups share it),
the gradients given, and the parameters AFTER ``optimizer.step()``.  The
scheduler, if any, is stepped once per optimiser step.

Every float32 value (init, grads, params) is written as the shortest decimal
that rounds back to the same float32, so ``Math.fround(x)`` recovers it
exactly.  LRs are Python floats (float64) written exactly.

``label_smoothing``: logits [4, 5] with logits.flat[i] = sin(0.37*i), labels
[1, 0, 4, 2]; for each smoothing s in (0, 0.1, 0.3) the mean
``F.cross_entropy(logits, labels, label_smoothing=s)`` and its gradient with
respect to the logits, all in float64.
"""

import json
import math
import os
import struct
import warnings

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "test", "fixtures", "optim_goldens.json")

STEPS = 20
F32 = torch.float32
F64 = torch.float64


# ----------------------------------------------------------------------------
# serialisation helpers
# ----------------------------------------------------------------------------

def _f32_bits(x):
    return struct.pack("<f", x)


def short_f32(x):
    """Shortest decimal (as a Python float) that rounds to the same float32 as x."""
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return x
    bits = _f32_bits(x)
    for digits in range(1, 10):
        y = float("%.*g" % (digits, x))
        if _f32_bits(y) == bits:
            return y
    return x


def f32_list(t):
    assert t.dtype == F32
    return [short_f32(v) for v in t.detach().reshape(-1).tolist()]


def f64_list(t):
    return [float(v) for v in t.detach().to(F64).reshape(-1).tolist()]


# ----------------------------------------------------------------------------
# optimiser cases
# ----------------------------------------------------------------------------

def init_params():
    i_w = torch.arange(12, dtype=F64)
    i_b = torch.arange(4, dtype=F64)
    w = torch.sin(0.3 * i_w + 1.0).to(F32).reshape(3, 4)
    b = torch.cos(0.7 * i_b).to(F32)
    return torch.nn.Parameter(w), torch.nn.Parameter(b)


def gradients(w, b, t):
    i_w = torch.arange(12, dtype=F64)
    i_b = torch.arange(4, dtype=F64)
    with torch.no_grad():
        gw = torch.sin(0.5 * i_w + 0.9 * t).to(F32).reshape(3, 4) + 0.1 * w.detach()
        gb = torch.cos(0.4 * i_b - 0.3 * t).to(F32)
    return gw, gb


def groups(w, b, wd):
    return [{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}]


def pg_desc(wd):
    return [{"name": "w", "weight_decay": wd}, {"name": "b", "weight_decay": 0.0}]


def make_adamw(w, b, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, wd=0.05):
    opt = torch.optim.AdamW(groups(w, b, wd), lr=lr, betas=betas, eps=eps, amsgrad=False)
    desc = {
        "type": "AdamW", "lr": lr, "betas": list(betas), "eps": eps, "weight_decay": wd,
        "amsgrad": False, "param_groups": pg_desc(wd),
    }
    return opt, desc


def make_sgd(w, b, lr=0.1, momentum=0.9, nesterov=False, wd=0.0):
    opt = torch.optim.SGD(groups(w, b, wd), lr=lr, momentum=momentum, dampening=0.0,
                          nesterov=nesterov)
    desc = {
        "type": "SGD", "lr": lr, "momentum": momentum, "dampening": 0.0, "nesterov": nesterov,
        "weight_decay": wd, "param_groups": pg_desc(wd),
    }
    return opt, desc


def case_adamw(w, b):
    opt, desc = make_adamw(w, b)
    return opt, desc, None, {"type": "constant"}


def case_sgd_momentum(w, b):
    opt, desc = make_sgd(w, b, wd=1e-4)
    return opt, desc, None, {"type": "constant"}


def case_sgd_nesterov(w, b):
    opt, desc = make_sgd(w, b, nesterov=True, wd=1e-4)
    return opt, desc, None, {"type": "constant"}


def case_adamw_warmup_cosine(w, b):
    opt, desc = make_adamw(w, b)
    s = torch.optim.lr_scheduler
    sched = s.SequentialLR(
        opt,
        [s.LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=5),
         s.CosineAnnealingLR(opt, T_max=15, eta_min=1e-5)],
        milestones=[5],
    )
    sdesc = {
        "type": "SequentialLR",
        "schedulers": [
            {"type": "LinearLR", "start_factor": 0.01, "end_factor": 1.0, "total_iters": 5},
            {"type": "CosineAnnealingLR", "T_max": 15, "eta_min": 1e-5},
        ],
        "milestones": [5],
        "per": "step",
    }
    return opt, desc, sched, sdesc


def case_sgd_step(w, b):
    opt, desc = make_sgd(w, b, wd=0.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    return opt, desc, sched, {"type": "StepLR", "step_size": 7, "gamma": 0.5, "per": "step"}


CASES = {
    "adamw": case_adamw,
    "sgd_momentum": case_sgd_momentum,
    "sgd_nesterov": case_sgd_nesterov,
    "adamw_warmup_cosine": case_adamw_warmup_cosine,
    "sgd_step": case_sgd_step,
}


def run_case(make):
    w, b = init_params()
    opt, odesc, sched, sdesc = make(w, b)
    out = {
        "optimizer": odesc,
        "schedule": sdesc,
        "init": {"w": f32_list(w), "b": f32_list(b)},
        "steps": [],
    }
    for t in range(STEPS):
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[0] == lrs[1], lrs
        gw, gb = gradients(w, b, t)
        w.grad = gw.clone()
        b.grad = gb.clone()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out["steps"].append({
            "lr": float(lrs[0]),
            "grad_w": f32_list(gw), "grad_b": f32_list(gb),
            "w": f32_list(w), "b": f32_list(b),
        })
        if sched is not None:
            sched.step()
    return out


# ----------------------------------------------------------------------------
# label smoothing
# ----------------------------------------------------------------------------

def label_smoothing():
    logits0 = torch.sin(0.37 * torch.arange(20, dtype=F64)).reshape(4, 5)
    labels = torch.tensor([1, 0, 4, 2], dtype=torch.int64)
    cases = []
    for s in (0.0, 0.1, 0.3):
        logits = logits0.clone().requires_grad_(True)
        loss = F.cross_entropy(logits, labels, label_smoothing=s)
        (grad,) = torch.autograd.grad(loss, logits)
        cases.append({"smoothing": s, "loss": float(loss), "grad": f64_list(grad)})
    return {
        "logits": {"shape": [4, 5], "data": f64_list(logits0)},
        "labels": labels.tolist(),
        "reduction": "mean",
        "cases": cases,
    }


def main():
    torch.set_num_threads(1)
    # SequentialLR calls scheduler.step(0) at its milestone (closed form); that is intended.
    warnings.filterwarnings("ignore", message="The epoch parameter in `scheduler.step\\(\\)`")
    doc = {
        "generator": "scripts/make_optim_goldens.py",
        "torch_version": torch.__version__,
        "steps": STEPS,
        "optim": {name: run_case(make) for name, make in CASES.items()},
        "label_smoothing": label_smoothing(),
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d bytes)" % (os.path.relpath(OUT_PATH, ROOT), os.path.getsize(OUT_PATH)))


if __name__ == "__main__":
    main()
