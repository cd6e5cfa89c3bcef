"""Exports the image tower of scripts/clip_ref.py (OpenAI's model.py ported) with the weights tessera
wrote, for bench/clip_zero_shot.ts: ORT then runs PyTorch's export of the same tower.

argv: weights.safetensors (OpenAI keys, visual.* used) out.onnx name (ViT-B-32 …)
      [batch rounds threads,…]: also time PyTorch eager on the tower (torch.no_grad, the same
      input as the TS side: sin(0.37 · i)), median of `rounds` runs after one warm-up, at each
      thread count (torch.set_num_threads), printed as eager_images_per_second.
      [compile]: also torch.compile(tower) (inductor, default mode), timed the same way after
      its compiling first call, as compiled_images_per_second.
Run with PYTHONPATH=/opt/torch2 /usr/bin/python3 (torch 2.x; its TorchScript-based exporter).
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from clip_ref import CONFIGS, Visual  # noqa: E402


def images_per_second(run, xb, rounds, threads):
    """Median images/s of `rounds` no_grad calls after one warm-up call, at each thread count."""
    out = {}
    for t in threads:
        torch.set_num_threads(t)
        times = []
        with torch.no_grad():
            run(xb)
            for _ in range(rounds):
                t0 = time.perf_counter()
                run(xb)
                times.append(time.perf_counter() - t0)
        out[str(t)] = xb.shape[0] / sorted(times)[len(times) // 2]
    return out


def main():
    weights, out, name = sys.argv[1:4]
    c = CONFIGS[name]
    tower = Visual(c["image_size"], c["patch"], c["vw"], c["vl"], c["vw"] // 64, 4 * c["vw"], c["embed_dim"], "quick_gelu").eval()
    with open(weights, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        blob = f.read()
    sd = {k[len("visual."):]: torch.from_numpy(np.frombuffer(blob[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"]).copy())
          for k, v in header.items() if k.startswith("visual.")}
    tower.load_state_dict(sd)
    x = torch.randn(2, 3, c["image_size"], c["image_size"])
    with torch.no_grad():
        torch.onnx.export(tower, (x,), out, input_names=["x"], output_names=["embedding"], dynamic_axes={"x": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)
    result = {"torch": torch.__version__, "out": out}
    if len(sys.argv) > 4:
        batch, rounds = int(sys.argv[4]), int(sys.argv[5])
        s = c["image_size"]
        xb = torch.sin(0.37 * torch.arange(batch * 3 * s * s, dtype=torch.float64)).float().reshape(batch, 3, s, s)
        threads = [int(v) for v in sys.argv[6].split(",")]
        result["eager_images_per_second"] = images_per_second(tower, xb, rounds, threads)
        if sys.argv[7:8] == ["compile"]:
            result["compiled_images_per_second"] = images_per_second(torch.compile(tower), xb, rounds, threads)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
