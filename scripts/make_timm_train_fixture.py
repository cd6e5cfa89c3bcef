"""A real timm train.py output of a job `tessera torchrun` wrote (test/fixtures/timm_train/).

The whole way out and back: a tiny image folder (two classes of seeded noise, 28×28 grayscale
PNGs, train/ and val/), `tessera torchrun --write` for a one-stage Swin with EMA, then timm's
train.py (commit aa4b5850c1543fa488abf260f18390eda46cf85d, /tmp/timm_src, Debian torch 1.13) run
with exactly the job's arguments for two epochs on the CPU. The launcher itself is not used:
Debian's torch 1.13 torchrun fails on this Python before starting a worker
(`to_map(redirects, …)`: 'NoneType' object has no attribute 'get'), so train.py runs as the one
process torchrun would start; test/train/timm_families.test.ts checks that launch.sh hands
train.py exactly these arguments. Kept: args.yaml, summary.csv, model_best.pth.tar and the val/
images; test/train/import_run.test.ts imports the output and `tessera eval` on val/ must give the
eval loss and top-1 timm's train.py wrote for the EMA weights.

Run from the repository root:
    PYTHONPATH=/tmp/timm_src /usr/bin/python3 scripts/make_timm_train_fixture.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "timm_train")
TSX = os.path.join(ROOT, "node_modules", ".bin", "tsx")


def images(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 6)):
        for c in ("circle", "square"):
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
            for i in range(n):
                a = (rng.random((28, 28)) * 255).astype("uint8")
                if c == "square":
                    a[8:20, 8:20] = 255
                Image.fromarray(a, "L").save(os.path.join(root, split, c, f"{i}.png"))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "shapes")
        images(data)
        job = json.loads(subprocess.run(
            [TSX, "src/cli/bin.ts", "torchrun", "--model", "swin_nano_patch2_window7_28",
             "--model-kwargs", "embed_dim=8,depths=[2],num_heads=[2],patch_size=4,window_size=7", "--dataset", data,
             "--epochs", "8", "--batch-size", "8", "--lr", "0.01", "--warmup-epochs", "1", "--model-ema", "--model-ema-decay", "0.9", "--output", os.path.join(tmp, "output"), "--json"],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout)
        command = [w for arg in job["args"] for w in arg]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        subprocess.run([sys.executable, "/tmp/timm_src/train.py", *command, "--device", "cpu", "--workers", "1"],
                       cwd=tmp, check=True, env=env)
        run = os.path.join(tmp, "output", os.listdir(os.path.join(tmp, "output"))[0])
        shutil.rmtree(OUT, ignore_errors=True)
        os.makedirs(OUT)
        for f in ("args.yaml", "summary.csv", "model_best.pth.tar"):
            shutil.copy(os.path.join(run, f), OUT)
        shutil.copytree(os.path.join(data, "val"), os.path.join(OUT, "val"))
    print(f"wrote {OUT}")


main()
