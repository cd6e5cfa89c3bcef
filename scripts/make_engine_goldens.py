"""Generate golden reference values for tessera's tensor engine tests.

Produces ``test/fixtures/engine_goldens.json`` containing, computed with
PyTorch in float64:

* ``ops``   - per-op cases (inputs, attrs, forward output, a random cotangent
              and the vector-Jacobian products d(sum(output*cotangent))/d(input)),
* ``mlp``   - a 2-layer MLP (Linear -> exact GELU -> Linear) with a mean
              cross-entropy loss, its logits, loss and gradients,
* ``block`` - one pre-norm ViT transformer block in timm's parameter layout,
              its output and gradients for a random cotangent,
* ``bn_net`` - conv -> BatchNorm2d -> SiLU -> depthwise conv (stride 2) ->
              BatchNorm2d (momentum None) -> SiLU: two training steps (outputs,
              loss, input and parameter gradients, running statistics after
              each step, an SGD update between them), then eval outputs.

Run from the repository root:

    /usr/bin/python3 scripts/make_engine_goldens.py

Re-running keeps the committed values of every case already in the file and
appends the new ones: the inputs are drawn identically, but float64 results
differ in their last bits between BLAS builds and thread counts, and tests
should not churn. Delete the file to regenerate everything.

Only torch and the standard library are used.
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
DT = torch.float64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "test", "fixtures", "engine_goldens.json")


# ----------------------------------------------------------------------------
# serialisation helpers
# ----------------------------------------------------------------------------

def dtype_name(t):
    return {
        torch.float64: "float64",
        torch.float32: "float32",
        torch.int64: "int64",
        torch.bool: "bool",
    }[t.dtype]


def flat(t):
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.bool:
        return [bool(v) for v in t.tolist()]
    if t.dtype == torch.int64:
        return [int(v) for v in t.tolist()]
    return [float(v) for v in t.to(torch.float64).tolist()]


def enc(t, with_dtype=True):
    d = {"shape": list(t.shape)}
    if with_dtype:
        d["dtype"] = dtype_name(t)
    d["data"] = flat(t)
    return d


def randn(*shape):
    return torch.randn(*shape, dtype=DT)


def positive(*shape):
    return torch.randn(*shape, dtype=DT).abs() + 0.5


# ----------------------------------------------------------------------------
# op cases
# ----------------------------------------------------------------------------

CASES = []
NAMES = set()


def add_case(name, op, attrs, inputs, fn, differentiable=True):
    """Run fn(*inputs) and record output, cotangent and input gradients."""
    assert name not in NAMES, name
    NAMES.add(name)
    leaves = []
    for t in inputs:
        if t.is_floating_point() and differentiable:
            leaves.append(t.detach().clone().requires_grad_(True))
        else:
            leaves.append(t.detach().clone())
    out = fn(*leaves)
    case = {
        "name": name,
        "op": op,
        "attrs": attrs,
        "inputs": [enc(t) for t in inputs],
        "output": enc(out),
    }
    if differentiable:
        cot = torch.randn(out.shape, dtype=DT).to(out.dtype)
        float_leaves = [l for l in leaves if l.requires_grad]
        grads = torch.autograd.grad((out * cot).sum(), float_leaves, allow_unused=True)
        it = iter(grads)
        glist = []
        for l in leaves:
            if l.requires_grad:
                g = next(it)
                if g is None:
                    g = torch.zeros_like(l)
                glist.append(enc(g, with_dtype=False))
            else:
                glist.append(None)
        case["cotangent"] = enc(cot, with_dtype=False)
        case["grads"] = glist
    CASES.append(case)


# binary elementwise -----------------------------------------------------------
BIN = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}
for op, f in BIN.items():
    for tag, sa, sb in [("same", [2, 3], [2, 3]),
                        ("bcast_3x1", [2, 3, 4], [3, 1]),
                        ("bcast_4", [2, 3, 4], [4])]:
        if op == "pow":
            a = positive(*sa)
        else:
            a = randn(*sa)
        b = randn(*sb)
        if op == "div":
            # keep the divisor away from zero
            b = b.sign() * (b.abs() + 0.5)
        add_case(f"{op}_{tag}", op, {}, [a, b], f)
# reversed broadcasting direction (smaller operand first)
add_case("sub_bcast_lhs_small", "sub", {}, [randn(3, 1), randn(2, 3, 4)], torch.sub)
add_case("div_bcast_lhs_small", "div", {}, [randn(4), positive(2, 3, 4)], torch.div)

# unary ----------------------------------------------------------------------------
UN = {
    "neg": (torch.neg, randn),
    "exp": (torch.exp, randn),
    "log": (torch.log, positive),
    "sqrt": (torch.sqrt, positive),
    "tanh": (torch.tanh, randn),
    "erf": (torch.erf, randn),
    "abs": (torch.abs, randn),
    "sigmoid": (torch.sigmoid, randn),
}
for op, (f, gen) in UN.items():
    add_case(f"{op}_2x3x4", op, {}, [gen(2, 3, 4)], f)

# where ------------------------------------------------------------------------------
cond = torch.rand(3, 4) > 0.5
add_case("where_bcast", "where", {}, [cond, randn(2, 3, 4), randn(4)],
         lambda c, a, b: torch.where(c, a, b))
cond2 = torch.rand(2, 3) > 0.5
add_case("where_same", "where", {}, [cond2, randn(2, 3), randn(2, 3)],
         lambda c, a, b: torch.where(c, a, b))

# comparisons -------------------------------------------------------------------------
CMP = {
    "equal": torch.eq,
    "less": torch.lt,
    "greater": torch.gt,
    "less_equal": torch.le,
    "greater_equal": torch.ge,
}
for op, f in CMP.items():
    a = randn(2, 3, 4)
    b = randn(2, 3, 4)
    # make some entries exactly equal so equal/le/ge are exercised on ties
    mask = torch.rand(2, 3, 4) < 0.3
    b = torch.where(mask, a, b)
    add_case(f"{op}_same", op, {}, [a, b], f, differentiable=False)
    a2 = randn(2, 3, 4)
    b2 = a2[0, :, :1].clone()  # shape [3,1]; shares values with a2[0,:,0]
    add_case(f"{op}_bcast", op, {}, [a2, b2], f, differentiable=False)

# cast -----------------------------------------------------------------------------
add_case("cast_f64_to_f32", "cast", {"to": "float32"}, [randn(2, 3, 4)],
         lambda x: x.to(torch.float32))

# reductions -----------------------------------------------------------------------
RED = {
    "sum": lambda x, axes, kd: torch.sum(x, dim=axes, keepdim=kd),
    "mean": lambda x, axes, kd: torch.mean(x, dim=axes, keepdim=kd),
    "max": lambda x, axes, kd: torch.amax(x, dim=axes, keepdim=kd),
}
for op, f in RED.items():
    for axes, kd in [([1], False), ([0, 2], True), ([-1], True), ([0, 1, 2], False)]:
        tag = "ax" + "_".join(str(a).replace("-", "m") for a in axes) + ("_keep" if kd else "")
        add_case(f"{op}_{tag}", op, {"axes": axes, "keepdims": kd}, [randn(2, 3, 4)],
                 lambda x, axes=axes, kd=kd, f=f: f(x, axes, kd))

# shape ops --------------------------------------------------------------------------
add_case("reshape_2x3x4_to_6x4", "reshape", {"shape": [6, 4]}, [randn(2, 3, 4)],
         lambda x: x.reshape(6, 4))
add_case("reshape_2x3x4_to_4x1x6", "reshape", {"shape": [4, 1, 6]}, [randn(2, 3, 4)],
         lambda x: x.reshape(4, 1, 6))
add_case("transpose_201", "transpose", {"perm": [2, 0, 1]}, [randn(2, 3, 4)],
         lambda x: x.permute(2, 0, 1))
add_case("transpose_2d", "transpose", {"perm": [1, 0]}, [randn(3, 5)],
         lambda x: x.permute(1, 0))
add_case("expand_3x1_to_2x3x4", "expand", {"shape": [2, 3, 4]}, [randn(3, 1)],
         lambda x: x.expand(2, 3, 4))
add_case("expand_1x4_to_3x4", "expand", {"shape": [3, 4]}, [randn(1, 4)],
         lambda x: x.expand(3, 4))
add_case("concat_axis1", "concat", {"axis": 1},
         [randn(2, 1, 4), randn(2, 3, 4), randn(2, 2, 4)],
         lambda a, b, c: torch.cat([a, b, c], dim=1))
add_case("concat_axis0", "concat", {"axis": 0},
         [randn(1, 3), randn(2, 3), randn(3, 3)],
         lambda a, b, c: torch.cat([a, b, c], dim=0))


def onnx_slice(x, starts, ends, axes):
    idx = [slice(None)] * x.dim()
    for s, e, a in zip(starts, ends, axes):
        idx[a] = slice(s, e)
    return x[tuple(idx)]


for name, st, en, ax in [("slice_basic", [1, 0], [3, 2], [1, 2]),
                         ("slice_neg_start", [-2], [4], [2]),
                         ("slice_axis0", [0], [1], [0])]:
    add_case(name, "slice", {"starts": st, "ends": en, "axes": ax}, [randn(2, 3, 4)],
             lambda x, st=st, en=en, ax=ax: onnx_slice(x, st, en, ax))


def onnx_gather(x, idx, axis):
    sel = torch.index_select(x, axis, idx.reshape(-1))
    shape = list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:])
    return sel.reshape(shape)


gidx = torch.tensor([[0, 2], [2, 3]], dtype=torch.int64)
add_case("gather_axis1_repeat", "gather", {"axis": 1}, [randn(3, 4, 2), gidx],
         lambda x, i: onnx_gather(x, i, 1))
gidx0 = torch.tensor([[1, 1], [0, 2]], dtype=torch.int64)
add_case("gather_axis0_repeat", "gather", {"axis": 0}, [randn(3, 4), gidx0],
         lambda x, i: onnx_gather(x, i, 0))

add_case("squeeze_axes_1_3", "squeeze", {"axes": [1, 3]}, [randn(2, 1, 3, 1)],
         lambda x: x.squeeze(3).squeeze(1))
add_case("squeeze_axis0", "squeeze", {"axes": [0]}, [randn(1, 4)],
         lambda x: x.squeeze(0))


def onnx_unsqueeze(x, axes):
    rank = x.dim() + len(axes)
    axes = sorted(a % rank for a in axes)
    for a in axes:
        x = x.unsqueeze(a)
    return x


add_case("unsqueeze_axes_0_3", "unsqueeze", {"axes": [0, 3]}, [randn(2, 3)],
         lambda x: onnx_unsqueeze(x, [0, 3]))
add_case("unsqueeze_axis_last", "unsqueeze", {"axes": [-1]}, [randn(2, 3)],
         lambda x: onnx_unsqueeze(x, [-1]))


def onnx_pad(x, pads, value):
    n = x.dim()
    tp = []
    for d in reversed(range(n)):
        tp += [pads[d], pads[n + d]]
    return F.pad(x, tp, mode="constant", value=value)


add_case("pad_2d", "pad", {"pads": [1, 0, 2, 3], "value": 0.0}, [randn(2, 3)],
         lambda x: onnx_pad(x, [1, 0, 2, 3], 0.0))
add_case("pad_nchw_spatial", "pad", {"pads": [0, 0, 1, 2, 0, 0, 1, 0], "value": 0.0},
         [randn(1, 2, 3, 3)], lambda x: onnx_pad(x, [0, 0, 1, 2, 0, 0, 1, 0], 0.0))
add_case("pad_value_nonzero", "pad", {"pads": [0, 1, 0, 1], "value": 1.5}, [randn(2, 2)],
         lambda x: onnx_pad(x, [0, 1, 0, 1], 1.5))

# matmul -------------------------------------------------------------------------------
add_case("matmul_2x3x4_4x5", "matmul", {}, [randn(2, 3, 4), randn(4, 5)], torch.matmul)
add_case("matmul_bcast_2x1x3x4_3x4x2", "matmul", {}, [randn(2, 1, 3, 4), randn(3, 4, 2)],
         torch.matmul)
add_case("matmul_3x4_4x2", "matmul", {}, [randn(3, 4), randn(4, 2)], torch.matmul)

# conv2d -------------------------------------------------------------------------------
for name, xs, ws, st, pd, dl, g in [
        ("conv2d_s1_p1", [2, 3, 8, 8], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1], 1),
        ("conv2d_s2_p1_g2", [2, 4, 9, 9], [6, 2, 3, 3], [2, 2], [1, 1], [1, 1], 2),
        ("conv2d_patchify_s4", [2, 3, 8, 8], [5, 3, 4, 4], [4, 4], [0, 0], [1, 1], 1),
        ("conv2d_dilation2", [1, 2, 7, 7], [3, 2, 3, 3], [1, 1], [0, 0], [2, 2], 1)]:
    attrs = {"stride": st, "padding": pd, "dilation": dl, "groups": g}
    add_case(name, "conv2d", attrs, [randn(*xs), randn(*ws), randn(ws[0])],
             lambda x, w, b, st=st, pd=pd, dl=dl, g=g:
             F.conv2d(x, w, b, stride=st, padding=pd, dilation=dl, groups=g))

# avg_pool2d -----------------------------------------------------------------------------
add_case("avg_pool2d_k2_s2", "avg_pool2d",
         {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]}, [randn(2, 3, 6, 6)],
         lambda x: F.avg_pool2d(x, 2, 2, 0))
add_case("avg_pool2d_k3_s2_p1_incl", "avg_pool2d",
         {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "count_include_pad": True},
         [randn(2, 2, 7, 7)],
         lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=True))

# softmax / log_softmax ------------------------------------------------------------------
for op, f in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
    add_case(f"{op}_axis_m1", op, {"axis": -1}, [randn(2, 3, 4)],
             lambda x, f=f: f(x, dim=-1))
    add_case(f"{op}_axis1", op, {"axis": 1}, [randn(2, 3, 4)],
             lambda x, f=f: f(x, dim=1))

# layer_norm / gelu ----------------------------------------------------------------------
add_case("layer_norm_last", "layer_norm", {"eps": 1e-5},
         [randn(2, 3, 6), 1 + 0.1 * randn(6), 0.1 * randn(6)],
         lambda x, w, b: F.layer_norm(x, (6,), w, b, eps=1e-5))
add_case("gelu_2x3x4", "gelu", {}, [randn(2, 3, 4) * 2],
         lambda x: F.gelu(x))

# argmax -----------------------------------------------------------------------------------
add_case("argmax_last", "argmax", {"axis": -1, "keepdims": False}, [randn(2, 3, 4)],
         lambda x: torch.argmax(x, dim=-1, keepdim=False), differentiable=False)
add_case("argmax_axis1_keep", "argmax", {"axis": 1, "keepdims": True}, [randn(2, 3, 4)],
         lambda x: torch.argmax(x, dim=1, keepdim=True), differentiable=False)

# cross entropy ----------------------------------------------------------------------------
for name, sm in [("cross_entropy_smooth0.1", 0.1), ("cross_entropy_smooth0", 0.0)]:
    labels = torch.randint(0, 5, (4,), dtype=torch.int64)
    add_case(name, "cross_entropy", {"smoothing": sm}, [randn(4, 5), labels],
             lambda z, y, sm=sm: F.cross_entropy(z, y, label_smoothing=sm))


# ----------------------------------------------------------------------------
# MLP
# ----------------------------------------------------------------------------

def make_mlp():
    x = randn(4, 3)
    labels = torch.randint(0, 5, (4,), dtype=torch.int64)
    params = {
        "fc1.weight": randn(8, 3) * 0.5,
        "fc1.bias": randn(8) * 0.1,
        "fc2.weight": randn(5, 8) * 0.5,
        "fc2.bias": randn(5) * 0.1,
    }
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    xr = x.clone().requires_grad_(True)
    h = F.gelu(F.linear(xr, p["fc1.weight"], p["fc1.bias"]))
    logits = F.linear(h, p["fc2.weight"], p["fc2.bias"])
    loss = F.cross_entropy(logits, labels)
    keys = list(p.keys())
    grads = torch.autograd.grad(loss, [p[k] for k in keys] + [xr])
    return {
        "x": enc(x),
        "labels": enc(labels),
        "params": {k: enc(v) for k, v in params.items()},
        "logits": enc(logits),
        "loss": float(loss.item()),
        "grads": {k: enc(g, with_dtype=False) for k, g in zip(keys, grads[:-1])},
        "grad_x": enc(grads[-1], with_dtype=False),
    }


# ----------------------------------------------------------------------------
# transformer block (timm layout)
# ----------------------------------------------------------------------------

def block_forward(x, p, heads):
    B, N, C = x.shape
    D = C // heads
    h = F.layer_norm(x, (C,), p["norm1.weight"], p["norm1.bias"], eps=1e-6)
    qkv = F.linear(h, p["attn.qkv.weight"], p["attn.qkv.bias"])
    qkv = qkv.reshape(B, N, 3, heads, D).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = (q * D ** -0.5) @ k.transpose(-2, -1)
    att = att.softmax(dim=-1)
    o = (att @ v).transpose(1, 2).reshape(B, N, C)
    o = F.linear(o, p["attn.proj.weight"], p["attn.proj.bias"])
    x = x + o
    h = F.layer_norm(x, (C,), p["norm2.weight"], p["norm2.bias"], eps=1e-6)
    h = F.gelu(F.linear(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"]))
    h = F.linear(h, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return x + h


def make_block():
    B, N, C, H, HID = 2, 5, 12, 3, 48
    params = {
        "norm1.weight": 1 + 0.1 * randn(C),
        "norm1.bias": 0.1 * randn(C),
        "attn.qkv.weight": randn(3 * C, C) * 0.2,
        "attn.qkv.bias": randn(3 * C) * 0.1,
        "attn.proj.weight": randn(C, C) * 0.2,
        "attn.proj.bias": randn(C) * 0.1,
        "norm2.weight": 1 + 0.1 * randn(C),
        "norm2.bias": 0.1 * randn(C),
        "mlp.fc1.weight": randn(HID, C) * 0.2,
        "mlp.fc1.bias": randn(HID) * 0.1,
        "mlp.fc2.weight": randn(C, HID) * 0.2,
        "mlp.fc2.bias": randn(C) * 0.1,
    }
    x = randn(B, N, C)
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    xr = x.clone().requires_grad_(True)
    y = block_forward(xr, p, H)
    cot = randn(B, N, C)
    keys = list(p.keys())
    grads = torch.autograd.grad((y * cot).sum(), [p[k] for k in keys] + [xr])
    return {
        "config": {"batch": B, "tokens": N, "dim": C, "heads": H, "mlp_hidden": HID,
                   "eps": 1e-6},
        "x": enc(x),
        "params": {k: enc(v) for k, v in params.items()},
        "output": enc(y),
        "cotangent": enc(cot, with_dtype=False),
        "grads": {k: enc(g, with_dtype=False) for k, g in zip(keys, grads[:-1])},
        "grad_x": enc(grads[-1], with_dtype=False),
    }


def add_group_norm_cases():
    """Added after the MLP and block draw their tensors, so the earlier goldens keep their values."""
    for name, groups, shape in [("group_norm_2groups", 2, (2, 4, 3, 5)), ("group_norm_per_channel", 6, (3, 6, 2, 2))]:
        c = shape[1]
        add_case(name, "group_norm", {"groups": groups, "eps": 1e-5},
                 [randn(*shape) * 2 + 0.5, 1 + 0.1 * randn(c), 0.1 * randn(c)],
                 lambda x, w, b, g=groups: F.group_norm(x, g, w, b, eps=1e-5))


def add_vision_cases():
    """Grouped/depthwise convolution, SiLU, bilinear resize, roll and training-mode
    BatchNorm; drawn after every earlier case so those keep their values."""
    for name, xs, ws, st, pd, g in [
            ("conv2d_depthwise_s1_p1", [2, 4, 6, 6], [4, 1, 3, 3], [1, 1], [1, 1], 4),
            ("conv2d_depthwise_s2_p1_mult2", [2, 3, 9, 8], [6, 1, 3, 3], [2, 2], [1, 1], 3),
            ("conv2d_depthwise_5x5_s2_p2", [1, 3, 9, 8], [3, 1, 5, 5], [2, 2], [2, 2], 3),
            ("conv2d_grouped_g3_s1_p1", [1, 6, 5, 5], [9, 2, 3, 3], [1, 1], [1, 1], 3)]:
        attrs = {"stride": st, "padding": pd, "dilation": [1, 1], "groups": g}
        add_case(name, "conv2d", attrs, [randn(*xs), randn(*ws), randn(ws[0])],
                 lambda x, w, b, st=st, pd=pd, g=g: F.conv2d(x, w, b, stride=st, padding=pd, groups=g))
    add_case("silu_2x3x4", "silu", {}, [randn(2, 3, 4) * 2], F.silu)
    for name, xs, size, ac in [
            ("resize_bilinear_up_half_pixel", [2, 3, 5, 6], [8, 9], False),
            ("resize_bilinear_down_half_pixel", [2, 2, 9, 7], [4, 5], False),
            ("resize_bilinear_up_align_corners", [2, 2, 4, 5], [7, 9], True),
            ("resize_bilinear_mixed_align_corners", [1, 2, 6, 4], [3, 8], True),
            ("resize_bilinear_to_one_row_half_pixel", [1, 2, 5, 3], [1, 3], False),
            ("resize_bilinear_to_one_row_align_corners", [1, 2, 5, 4], [1, 6], True)]:
        add_case(name, "resize_bilinear", {"size": size, "align_corners": ac}, [randn(*xs)],
                 lambda x, size=size, ac=ac: F.interpolate(x, size=size, mode="bilinear", align_corners=ac))
    add_case("roll_two_axes", "roll", {"shifts": [2, -1], "axes": [1, 2]}, [randn(2, 5, 4)],
             lambda x: torch.roll(x, shifts=(2, -1), dims=(1, 2)))
    add_case("batch_norm_train", "batch_norm", {"eps": 1e-5},
             [randn(4, 3, 5, 5) * 2 + 1, 1 + 0.1 * randn(3), 0.1 * randn(3)],
             lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-5))


def bn_net_forward(x, p, bufs, train):
    """stem: conv 3x3 -> bn (momentum 0.1) -> SiLU; dw: depthwise 3x3 stride 2 -> bn (momentum None) -> SiLU."""
    h = F.conv2d(x, p["stem.conv.weight"], None, padding=1)
    h = F.silu(batch_norm(h, p, bufs, "stem.bn", train, 0.1))
    h = F.conv2d(h, p["dw.conv.weight"], None, stride=2, padding=1, groups=h.shape[1])
    return F.silu(batch_norm(h, p, bufs, "dw.bn", train, None))


def batch_norm(x, p, bufs, key, train, momentum):
    """torch.nn.BatchNorm2d's forward, on the state dict's tensors (updates bufs in place in training)."""
    bn = torch.nn.BatchNorm2d(x.shape[1], eps=1e-5, momentum=momentum).to(DT)
    bn.train(train)
    with torch.no_grad():
        for b in ("running_mean", "running_var", "num_batches_tracked"):
            getattr(bn, b).copy_(bufs[f"{key}.{b}"])
    bn.weight, bn.bias = None, None  # the affine comes from p, so its gradient reaches p
    y = bn(x) * p[f"{key}.weight"].view(1, -1, 1, 1) + p[f"{key}.bias"].view(1, -1, 1, 1)
    for b in ("running_mean", "running_var", "num_batches_tracked"):
        bufs[f"{key}.{b}"] = getattr(bn, b).detach().clone()
    return y


def make_bn_net():
    c = 8
    params = {
        "stem.conv.weight": randn(c, 3, 3, 3) * 0.4,
        "stem.bn.weight": 1 + 0.2 * randn(c),
        "stem.bn.bias": 0.2 * randn(c),
        "dw.conv.weight": randn(c, 1, 3, 3) * 0.4,
        "dw.bn.weight": 1 + 0.2 * randn(c),
        "dw.bn.bias": 0.2 * randn(c),
    }
    bufs = {}
    for key, tracked in (("stem.bn", 5), ("dw.bn", 3)):
        bufs[f"{key}.running_mean"] = 0.3 * randn(c)
        bufs[f"{key}.running_var"] = 0.5 + randn(c).abs()
        bufs[f"{key}.num_batches_tracked"] = torch.tensor(tracked, dtype=torch.int64)
    lr = 0.1
    doc = {"lr": lr, "params": {k: enc(v) for k, v in params.items()},
           "buffers": {k: enc(v) for k, v in bufs.items()}, "steps": []}
    for _ in range(2):
        x = randn(3, 3, 6, 6)
        cot = randn(3, c, 3, 3)
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        xr = x.clone().requires_grad_(True)
        y = bn_net_forward(xr, p, bufs, True)
        loss = (y * cot).sum()
        keys = list(p.keys())
        grads = torch.autograd.grad(loss, [p[k] for k in keys] + [xr])
        doc["steps"].append({
            "x": enc(x), "cotangent": enc(cot, with_dtype=False), "output": enc(y), "loss": float(loss.item()),
            "grads": {k: enc(g, with_dtype=False) for k, g in zip(keys, grads[:-1])},
            "grad_x": enc(grads[-1], with_dtype=False),
            "buffers": {k: enc(v) for k, v in bufs.items()},
        })
        params = {k: (v - lr * g).detach() for (k, v), g in zip(params.items(), grads[:-1])}
    x = randn(2, 3, 6, 6)
    with torch.no_grad():
        y = bn_net_forward(x, params, dict(bufs), False)
    doc["eval"] = {"x": enc(x), "output": enc(y)}
    return doc


def keep_committed(doc):
    """Every case already in the file keeps its committed values (see the module docstring)."""
    if not os.path.exists(OUT_PATH):
        return doc
    with open(OUT_PATH) as fh:
        old = json.load(fh)
    committed = {c["name"]: c for c in old.get("ops", [])}
    doc["ops"] = [committed.get(c["name"], c) for c in doc["ops"]]
    for key in doc:
        if key not in ("generator", "torch_version", "ops") and key in old:
            doc[key] = old[key]
    doc["torch_version"] = old.get("torch_version", doc["torch_version"])
    return doc


def main():
    mlp, block = make_mlp(), make_block()
    add_group_norm_cases()
    add_vision_cases()
    bn_net = make_bn_net()
    doc = keep_committed({
        "generator": "scripts/make_engine_goldens.py",
        "torch_version": torch.__version__,
        "ops": CASES,
        "mlp": mlp,
        "block": block,
        "bn_net": bn_net,
    })
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as fh:
        json.dump(doc, fh, allow_nan=False, separators=(",", ":"))
        fh.write("\n")
    size = os.path.getsize(OUT_PATH)
    print(f"wrote {OUT_PATH}: {len(CASES)} op cases, {size} bytes")


if __name__ == "__main__":
    main()
