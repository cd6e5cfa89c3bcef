"""PyTorch eager peer for the ViT model benchmark (vit_tiny_patch16_224).

Usage:

    /usr/bin/python3 bench/peers/torch_vit.py MODE THREADS BATCH REPEATS [PATH|-] [CONFIG_JSON]

CONFIG_JSON is a tessera model config (camelCase keys: imgSize, patchSize, inChans, numClasses,
embedDim, depth, numHeads, mlpRatio, qkvBias, globalPool, classToken, distilled); missing keys
take vit_tiny_patch16_224's values.

MODE:
  infer   eval + no_grad forward of a [BATCH,3,224,224] batch; median seconds
          per forward after 3 warmups.
  train   forward + mean cross-entropy + backward + AdamW(lr=1e-3,
          weight_decay=0.05).step() + zero_grad(set_to_none=True); median
          seconds per step after 3 warmups.
  export  torch.onnx.export of the eval model to PATH (opset 17, input
          "input", output "logits", dynamic batch axis), checked with
          onnx.checker.

Prints exactly one JSON line on stdout:
  infer/train: {"mode","seconds","images_per_second","peak_rss_mb"}
  export:      {"mode":"export","path":PATH}
The model is scripts/timm_vit.py (timm parameter layout), randomly initialised.
"""
import json
import os
import resource
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "scripts")))

from timm_vit import VisionTransformer  # noqa: E402
from peer_timing import timed  # noqa: E402


TINY = dict(imgSize=224, patchSize=16, inChans=3, numClasses=1000, embedDim=192, depth=12,
            numHeads=3, mlpRatio=4.0, qkvBias=True, globalPool="token", classToken=True, distilled=False)


def build_model(config_json):
    c = dict(TINY, **(json.loads(config_json) if config_json else {}))
    model = VisionTransformer(
        img_size=c["imgSize"], patch_size=c["patchSize"], in_chans=c["inChans"], num_classes=c["numClasses"],
        embed_dim=c["embedDim"], depth=c["depth"], num_heads=c["numHeads"], mlp_ratio=c["mlpRatio"],
        qkv_bias=c["qkvBias"], global_pool=c["globalPool"], class_token=c["classToken"], distilled=c["distilled"],
    )
    return model, (c["inChans"], c["imgSize"], c["imgSize"]), c["numClasses"]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv):
    if len(argv) < 5:
        sys.stderr.write(__doc__)
        return 2
    mode, threads, batch, repeats = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, image_shape, num_classes = build_model(argv[6] if len(argv) > 6 else None)

    if mode == "infer":
        model.eval()
        x = torch.randn(batch, *image_shape)

        def step():
            with torch.no_grad():
                model(x)

        seconds = timed(step, repeats)
    elif mode == "train":
        model.train()
        x = torch.randn(batch, *image_shape)
        y = torch.randint(0, num_classes, (batch,))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

        def step():
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        seconds = timed(step, repeats)
    elif mode == "export":
        if len(argv) < 6:
            sys.stderr.write("export needs PATH\n")
            return 2
        path = argv[5]
        model.eval()
        x = torch.randn(batch, *image_shape)
        torch.onnx.export(
            model, (x,), path,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True,
        )
        import onnx

        onnx.checker.check_model(onnx.load(path))
        print(json.dumps({"mode": "export", "path": path}))
        return 0
    else:
        sys.stderr.write(f"unknown mode {mode!r}\n")
        return 2

    print(json.dumps({
        "mode": mode,
        "seconds": seconds,
        "images_per_second": batch / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
