"""Fixtures for `tessera import-run` (test/fixtures/timm_run/) and the tessera → timm round trip.

1. A tiny timm training output, made as timm's train.py makes one (timm at commit
   aa4b5850c1543fa488abf260f18390eda46cf85d, /tmp/timm_src): train.py's own parser gives the args
   (args.yaml is their yaml.safe_dump, as train.py writes it), timm.create_model builds a tiny ViT
   from them, its weights are perturbed with seeded noise, one AdamW step fills the optimizer state,
   and model_best.pth.tar is torch.save'd with the keys timm's CheckpointSaver writes (epoch, arch,
   state_dict, optimizer, version, args: the argparse.Namespace itself, metric). summary.csv has
   timm's columns (update_summary). reference.json holds the model's logits on sin(0.05·i) of shape
   [2, 1, 16, 16].
2. The same for a Swin (test/fixtures/timm_run_swin/), a family whose image size the weights do
   not say, trained with --model-ema and --class-map classes.txt: model_best.pth.tar also holds
   state_dict_ema (other perturbed weights), as timm's CheckpointSaver writes it; reference.json
   holds the logits of both state dicts on sin(0.05·i) of shape [2, 1, 16, 16].
3. A ConViT trained with --gp avg (test/fixtures/timm_run_convit/): its pooling is not in the
   weights, only in args.yaml; reference.json holds its logits on sin(0.05·i) of [2, 1, 16, 16].
4. Round trip: a tessera checkpoint (vit_tiny_patch4_28, seed 7, written by tessera) is converted
   by `tessera convert --to timm` to a .pth, loaded into timm.create_model(..., **kwargs) with
   load_state_dict(strict=True), and its logits on sin(0.05·i) of [2, 1, 28, 28] are stored;
   the test builds the same tessera model and compares.

Run from the repository root (Debian torch 1.13):
    PYTHONPATH=/tmp/timm_src /usr/bin/python3 scripts/make_timm_run_fixture.py
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
import yaml

TIMM_COMMIT = "aa4b5850c1543fa488abf260f18390eda46cf85d"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "timm_run")
TSX = os.path.join(ROOT, "node_modules", ".bin", "tsx")


def det_input(shape):
    n = math.prod(shape)
    return torch.sin(0.05 * torch.arange(n, dtype=torch.float64)).float().reshape(shape)


def timm_output():
    sys.argv = ["train.py", "--model", "vit_base_patch16_224", "--img-size", "16", "--in-chans", "1", "--num-classes", "3",
                "--model-kwargs", "patch_size=4", "embed_dim=8", "depth=2", "num_heads=2", "mlp_ratio=2", "global_pool=avg",
                "--mean", "0.5", "--std", "0.25", "--crop-pct", "1", "--interpolation", "bilinear",
                "--epochs", "2", "--batch-size", "4", "--lr", "0.001", "--opt", "adamw", "--output", "output", "--experiment", "tiny"]
    import train  # timm's train.py: its parser
    from timm.models import create_model
    args, args_text = train._parse_args()
    torch.manual_seed(0)
    model = create_model(args.model, pretrained=False, in_chans=args.in_chans, num_classes=args.num_classes,
                         img_size=args.img_size, **args.model_kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model(torch.randn(2, 1, 16, 16)).logsumexp(1).mean().backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(det_input([2, 1, 16, 16]))
    os.makedirs(OUT, exist_ok=True)
    torch.save({"epoch": 1, "arch": args.model, "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "version": 2,
                "args": args, "metric": 66.5}, os.path.join(OUT, "model_best.pth.tar"))
    with open(os.path.join(OUT, "args.yaml"), "w") as f:
        f.write(args_text)
    with open(os.path.join(OUT, "summary.csv"), "w") as f:
        f.write("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n")
        f.write("0,1.25,1.125,33.0,100.0,0.0005\n")
        f.write("1,1.0,0.875,66.5,100.0,0.001\n")
    return {"input_shape": [2, 1, 16, 16], "logits": logits.flatten().tolist()}


SWIN = os.path.join(ROOT, "test", "fixtures", "timm_run_swin")


def timm_swin_output():
    os.makedirs(SWIN, exist_ok=True)
    with open(os.path.join(SWIN, "classes.txt"), "w") as f:
        f.write("circle\nsquare\ntriangle\n")
    sys.argv = ["train.py", "--model", "swin_tiny_patch4_window7_224", "--in-chans", "1", "--num-classes", "3",
                "--model-kwargs", "img_size=16", "patch_size=2", "window_size=4", "embed_dim=8", "depths=(2,2)", "num_heads=(2,4)", "mlp_ratio=2",
                "--data-dir", "/datasets/shapes", "--class-map", "classes.txt", "--model-ema", "--model-ema-decay", "0.99",
                "--mean", "0.5", "--std", "0.25", "--crop-pct", "1", "--interpolation", "bilinear",
                "--epochs", "2", "--batch-size", "4", "--lr", "0.001", "--opt", "adamw", "--output", "output", "--experiment", "swin"]
    import train
    from timm.models import create_model
    args, args_text = train._parse_args()
    torch.manual_seed(1)
    kw = dict(in_chans=args.in_chans, num_classes=args.num_classes, drop_rate=args.drop, drop_path_rate=args.drop_path, global_pool=args.gp)
    model = create_model(args.model, pretrained=False, **kw, **args.model_kwargs)
    ema = create_model(args.model, pretrained=False, **kw, **args.model_kwargs)
    with torch.no_grad():
        for p, q in zip(model.parameters(), ema.parameters()):
            p.add_(0.05 * torch.randn_like(p))
            q.copy_(p + 0.02 * torch.randn_like(p))
    model.eval()
    ema.eval()
    x = det_input([2, 1, 16, 16])
    with torch.no_grad():
        logits, ema_logits = model(x), ema(x)
    assert (logits - ema_logits).abs().max() > 1e-2, "EMA weights too close to tell apart"
    torch.save({"epoch": 1, "arch": args.model, "state_dict": model.state_dict(), "state_dict_ema": ema.state_dict(), "version": 2,
                "args": args, "metric": 50.0}, os.path.join(SWIN, "model_best.pth.tar"))
    with open(os.path.join(SWIN, "args.yaml"), "w") as f:
        f.write(args_text)
    with open(os.path.join(SWIN, "summary.csv"), "w") as f:
        f.write("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n")
        f.write("0,1.1,1.05,40.0,100.0,0.0005\n")
        f.write("1,0.9,0.95,50.0,100.0,0.001\n")
    return {"input_shape": [2, 1, 16, 16], "logits": logits.flatten().tolist(), "ema_logits": ema_logits.flatten().tolist()}


CONVIT = os.path.join(ROOT, "test", "fixtures", "timm_run_convit")


def timm_convit_output():
    os.makedirs(CONVIT, exist_ok=True)
    sys.argv = ["train.py", "--model", "convit_tiny", "--in-chans", "1", "--num-classes", "4", "--gp", "avg",
                "--model-kwargs", "img_size=16", "patch_size=4", "embed_dim=8", "num_heads=2", "depth=2", "local_up_to_layer=1", "mlp_ratio=2",
                "--mean", "0.5", "--std", "0.25", "--crop-pct", "1", "--interpolation", "bilinear",
                "--epochs", "1", "--batch-size", "4", "--lr", "0.001", "--output", "output", "--experiment", "convit"]
    import train
    from timm.models import create_model
    args, args_text = train._parse_args()
    torch.manual_seed(2)
    model = create_model(args.model, pretrained=False, in_chans=args.in_chans, num_classes=args.num_classes, global_pool=args.gp, **args.model_kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        logits = model(det_input([2, 1, 16, 16]))
    torch.save({"epoch": 0, "arch": args.model, "state_dict": model.state_dict(), "version": 2, "args": args, "metric": 25.0},
               os.path.join(CONVIT, "checkpoint-0.pth.tar"))
    with open(os.path.join(CONVIT, "args.yaml"), "w") as f:
        f.write(args_text)
    return {"input_shape": [2, 1, 16, 16], "logits": logits.flatten().tolist()}


def round_trip():
    from timm.models import create_model
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tessera.safetensors")
        pth = os.path.join(tmp, "timm.pth")
        code = ("import { createModel } from './src/models/registry.ts'; import { metaFor, saveCheckpoint } from './src/checkpoint/checkpoint.ts';"
                f"const m = createModel('vit_tiny_patch4_28', {{ seed: 7 }}); saveCheckpoint({json.dumps(ckpt)}, m, metaFor('vit_tiny_patch4_28', m, 'abcdefghij'.split('')));")
        subprocess.run([TSX, "-e", code], cwd=ROOT, check=True)
        subprocess.run([TSX, "src/cli/bin.ts", "convert", "--checkpoint", ckpt, "--to", "timm", "--out", pth], cwd=ROOT, check=True, capture_output=True)
        with open(ckpt, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            c = json.loads(json.loads(f.read(n))["__metadata__"]["tessera"])["config"]
        kwargs = dict(img_size=c["imgSize"], patch_size=c["patchSize"], in_chans=c["inChans"], num_classes=c["numClasses"],
                      embed_dim=c["embedDim"], depth=c["depth"], num_heads=c["numHeads"], mlp_ratio=c["mlpRatio"],
                      qkv_bias=c["qkvBias"], class_token=c["classToken"], global_pool=c["globalPool"])
        model = create_model("vit_base_patch16_224", pretrained=False, **kwargs)
        model.load_state_dict(torch.load(pth), strict=True)
        model.eval()
        with torch.no_grad():
            logits = model(det_input([2, 1, 28, 28]))
    return {"model": "vit_tiny_patch4_28", "seed": 7, "timm_kwargs": kwargs, "input_shape": [2, 1, 28, 28], "logits": logits.flatten().tolist()}


def main():
    ref = {"timm_commit": TIMM_COMMIT, "import": timm_output(), "round_trip": round_trip()}
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    convit = timm_convit_output()
    with open(os.path.join(CONVIT, "reference.json"), "w") as f:
        json.dump({"timm_commit": TIMM_COMMIT, "import": convit}, f, indent=1)
        f.write("\n")
    swin = timm_swin_output()
    with open(os.path.join(SWIN, "reference.json"), "w") as f:
        json.dump({"timm_commit": TIMM_COMMIT, "import": swin}, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


main()
