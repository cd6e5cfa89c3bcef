"""Golden for `tessera torchrun`: the timm train.py commands tessera writes for a few recipes, and
what timm's own argument parser makes of them.

Checked against timm's train.py at commit aa4b5850c1543fa488abf260f18390eda46cf85d (extracted at
/tmp/timm_src), imported as a module and parsed with its _parse_args(), exactly as `torchrun
train.py ...` parses them; an unknown flag or a bad value fails the script. Run with Debian's
torch 1.13:

    PYTHONPATH=/tmp/timm_src /usr/bin/python3 scripts/make_timm_job_fixture.py

Writes test/fixtures/timm_job/parsed_args.json: per recipe the tessera flags, the generated
command and timm's parsed namespace. test/train/timm_job.test.ts checks tessera still writes the
same command and that each parsed value is the recipe's.
"""
import json
import os
import subprocess
import sys

TIMM_COMMIT = "aa4b5850c1543fa488abf260f18390eda46cf85d"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "timm_job", "parsed_args.json")

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


def timm_parse(command):
    sys.argv = ["train.py", *command]
    import train  # timm's train.py; its parsers are module globals
    args, _ = train._parse_args()
    return {k: v for k, v in sorted(vars(args).items())}


def main():
    cases = []
    for flags in RECIPES:
        job = tessera_job(flags)
        command = [w for arg in job["args"] for w in arg]
        cases.append({"tessera": flags, "command": command, "parsed": timm_parse(command)})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"timm_commit": TIMM_COMMIT, "cases": cases}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT}")


main()
