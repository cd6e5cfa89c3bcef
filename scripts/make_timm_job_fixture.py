"""Golden for `tessera torchrun`: the timm train.py commands tessera writes for a few recipes, and
what timm's own argument parser makes of them.

Checked against timm's train.py at commit aa4b5850c1543fa488abf260f18390eda46cf85d (extracted at
/tmp/timm_src), imported as a module and parsed with its _parse_args(), exactly as `torchrun
train.py ...` parses them; an unknown flag or a bad value fails the script. Run with Debian's
torch 1.13:

    PYTHONPATH=/tmp/timm_src /usr/bin/python3 scripts/make_timm_job_fixture.py

Writes test/fixtures/timm_job/parsed_args.json: per recipe the tessera flags, the generated
command and timm's parsed namespace. test/train/timm_job.test.ts checks tessera still writes the
same command and that each parsed value is the recipe's. Each recipe's model is also built with
create_model exactly as train.py calls it, so a kwarg train.py passes itself (global_pool) or a
missing image size fails here.

Per family (test/helpers/timm_families.ts: Swin, ConViT, MobileViT v1/v2, a distilled DeiT), it
also writes test/fixtures/timm_job/families.json: a perturbed tessera checkpoint (written through
tsx) is the --pretrained start of `tessera torchrun --write`; timm's parser reads the command,
create_model builds the model as train.py does and loads the written pretrained.safetensors with
load_state_dict(strict=True); train.py's own pretrained path (pretrained_cfg_overlay file, head
adaptation) loads it too and must give the same pre-logits. Stored: the command, timm's
state_dict keys and dtypes, its logits on sin(0.05·i), the LR scale timm's
param_groups_layer_decay gives each parameter for --layer-decay 0.75, and each residual
branch's drop-path rate for --drop-path 0.1. An MAE checkpoint
(mae_vit_tiny_patch4_28) as the start of --model vit_tiny_patch4_28 must load into timm's ViT
with only the head missing (it is fresh, as in tessera's fine-tuning) and nothing unexpected.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

TIMM_COMMIT = "aa4b5850c1543fa488abf260f18390eda46cf85d"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "timm_job", "parsed_args.json")
FAMILIES_OUT = os.path.join(ROOT, "test", "fixtures", "timm_job", "families.json")

RECIPES = [
    ["--nproc-per-node", "4", "--nnodes", "2", "--model-ema", "--model-ema-decay", "0.999", "--layer-decay", "0.75",
     "--drop-path", "0.1", "--mixup", "0.8", "--cutmix", "1", "--aa", "rand-m9-mstd0.5-inc1", "--reprob", "0.25",
     "--clip-grad", "1", "--warmup-epochs", "0.5", "--grad-accum-steps", "2", "--epochs", "30"],
    ["--nproc-per-node", "8", "--model", "vit_small_patch16_224", "--dataset", "cifar100", "--img-size", "32",
     "--model-kwargs", "patch_size=4,depth=6,global_pool=avg,class_token=false", "--opt", "sgd", "--nesterov",
     "--lr", "0.05", "--sched", "step", "--decay-epochs", "3", "--decay-rate", "0.5", "--cutmix-minmax", "0.2,0.8",
     "--mixup-mode", "elem", "--threads", "2", "--crop-padding", "4", "--batch-size", "64"],
]


def tessera_job(flags):
    out = subprocess.run([os.path.join(ROOT, "node_modules", ".bin", "tsx"), "src/cli/bin.ts", "torchrun", "--json", *flags],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def timm_args(command):
    sys.argv = ["train.py", *command]
    import train  # timm's train.py; its parsers are module globals
    args, _ = train._parse_args()
    return args


def timm_parse(command):
    return {k: v for k, v in sorted(vars(timm_args(command)).items())}


def train_py_model(args, **extra):
    """create_model with the arguments train.py passes (train.py at TIMM_COMMIT, main())."""
    from timm.models import create_model
    return create_model(args.model, pretrained=extra.pop("pretrained", False), in_chans=args.in_chans, num_classes=args.num_classes,
                        drop_rate=args.drop, drop_path_rate=args.drop_path, drop_block_rate=args.drop_block, global_pool=args.gp,
                        bn_momentum=args.bn_momentum, bn_eps=args.bn_eps, scriptable=args.torchscript,
                        checkpoint_path=args.initial_checkpoint, **extra, **args.model_kwargs)


def read_safetensors(path):
    """The tensors of a .safetensors file (F32, I64), read by hand: Debian has no python3-safetensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64}
    return {k: torch.from_numpy(np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=dtypes[v["dtype"]]).copy().reshape(v["shape"]))
            for k, v in header.items() if k != "__metadata__"}


def det_input(shape):
    return torch.sin(0.05 * torch.arange(int(np.prod(shape)), dtype=torch.float64)).float().reshape(shape)


FAMILY_FLAGS = ["--layer-decay", "0.75", "--drop-path", "0.1"]


def drop_path_rates(model):
    """Each residual branch's stochastic-depth rate in forward order: DropPath's drop_prob (an
    Identity where timm's rate is 0); ConViT's Block applies its one drop_path to both branches."""
    modules = dict(model.named_modules())
    rates = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if not leaf.startswith("drop_path"):
            continue
        rate = float(getattr(module, "drop_prob", 0.0))
        parent = modules[name.rsplit(".", 1)[0]]
        twice = leaf == "drop_path" and type(parent).__module__.endswith(".convit")
        rates += [rate, rate] if twice else [rate]
    return rates


def family_case(case, tmp):
    from timm.optim import param_groups_layer_decay
    ckpt = os.path.join(tmp, f"{case['model']}.safetensors")
    code = ("import { FAMILY_CASES, writeFamilyCheckpoint } from './test/helpers/timm_families.ts';"
            f"writeFamilyCheckpoint(FAMILY_CASES.find((c) => c.model === {json.dumps(case['model'])})!, {json.dumps(ckpt)});")
    subprocess.run([os.path.join(ROOT, "node_modules", ".bin", "tsx"), "-e", code], cwd=ROOT, check=True)
    job_dir = os.path.join(tmp, "job-" + case["model"])
    job = tessera_job(["--pretrained", ckpt, "--write", job_dir, *FAMILY_FLAGS])
    command = [w for arg in job["args"] for w in arg]
    args = timm_args(command)
    model = train_py_model(args)
    state = read_safetensors(os.path.join(job_dir, "pretrained.safetensors"))
    model.load_state_dict(state, strict=True)
    # train.py's own --pretrained-path load: pretrained_cfg file, the model's filter_fn, head adaptation
    pth = os.path.join(tmp, case["model"] + ".pth")
    torch.save(state, pth)
    adapted = train_py_model(args, pretrained=True, pretrained_cfg_overlay=dict(file=pth, num_classes=-1))
    model.eval()
    adapted.eval()
    x = det_input([2, *args.input_size])
    with torch.no_grad():
        logits = model(x)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        pre_adapted = adapted.forward_head(adapted.forward_features(x), pre_logits=True)
    assert torch.equal(pre, pre_adapted), f"{case['model']}: train.py's pretrained load differs from the strict load"
    names = {id(p): n for n, p in model.named_parameters()}
    scales = {}
    for group in param_groups_layer_decay(model, weight_decay=args.weight_decay, no_weight_decay_list=getattr(model, "no_weight_decay", lambda: ())(), layer_decay=args.layer_decay):
        for p in group["params"]:
            scales[names[id(p)]] = group["lr_scale"]
    sd = model.state_dict()
    return {
        "case": case, "flags": FAMILY_FLAGS, "command": command, "timm_model": args.model, "model_kwargs": args.model_kwargs,
        "drop_path": args.drop_path, "layer_decay": args.layer_decay, "gp": args.gp,
        "state_dict": {k: {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")} for k, t in sd.items()},
        "input_shape": [2, *args.input_size], "logits": logits.flatten().tolist(), "lr_scale": scales,
        "drop_path_rates": drop_path_rates(model),
    }


def mae_encoder_case(tmp):
    ckpt = os.path.join(tmp, "mae.safetensors")
    code = ("import { createModel } from './src/models/registry.ts'; import { metaFor, saveCheckpoint } from './src/checkpoint/checkpoint.ts';"
            f"const m = createModel('mae_vit_tiny_patch4_28', {{ seed: 3 }}); saveCheckpoint({json.dumps(ckpt)}, m, metaFor('mae_vit_tiny_patch4_28', m, []));")
    subprocess.run([os.path.join(ROOT, "node_modules", ".bin", "tsx"), "-e", code], cwd=ROOT, check=True)
    job_dir = os.path.join(tmp, "job-mae")
    job = tessera_job(["--pretrained", ckpt, "--model", "vit_tiny_patch4_28", "--write", job_dir])
    command = [w for arg in job["args"] for w in arg]
    model = train_py_model(timm_args(command))
    result = model.load_state_dict(read_safetensors(os.path.join(job_dir, "pretrained.safetensors")), strict=False)
    return {"command": command, "missing": sorted(result.missing_keys), "unexpected": sorted(result.unexpected_keys)}


def main():
    cases = []
    for flags in RECIPES:
        job = tessera_job(flags)
        command = [w for arg in job["args"] for w in arg]
        train_py_model(timm_args(command))  # builds as train.py builds it
        cases.append({"tessera": flags, "command": command, "parsed": timm_parse(command)})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"timm_commit": TIMM_COMMIT, "cases": cases}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT}")
    listed = subprocess.run([os.path.join(ROOT, "node_modules", ".bin", "tsx"), "-e",
                             "import { FAMILY_CASES } from './test/helpers/timm_families.ts'; console.log(JSON.stringify(FAMILY_CASES));"],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        families = [family_case(c, tmp) for c in json.loads(listed)]
        mae = mae_encoder_case(tmp)
    with open(FAMILIES_OUT, "w") as f:
        json.dump({"timm_commit": TIMM_COMMIT, "cases": families, "mae_encoder": mae}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {FAMILIES_OUT}")


main()
