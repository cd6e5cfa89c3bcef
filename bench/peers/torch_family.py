"""PyTorch peer for the model benchmark of the Swin, ConViT, CvT and MobileViT families.

Usage:

    python3 bench/peers/torch_family.py MODE THREADS BATCH REPEATS PATH|- FAMILY NAME CONFIG_JSON [FLAGS]

MODE, the timing and the JSON line printed are those of bench/peers/torch_vit.py (infer, train,
export); FLAGS are its --compile, --bf16 and --attn sdpa|math ("attention" in the output says which
ran). With --attn sdpa (the default under PyTorch 2.x) Swin's window attention goes through
F.scaled_dot_product_attention with the relative position bias and shift mask as its additive
mask, as timm computes it with its experimental fused attention switched on (TIMM_FUSED_ATTN=2),
and MobileViT's transformer blocks take SDPA as timm's Attention does; with --attn math both are
written out. ConViT (gated mixture of two attention maps) and CvT (Hugging Face's CvT has no
fused path) always compute attention as written.

The model is the one users run where this Python environment can build it:
  * timm's own model (timm.create_model(NAME) when NAME is one of timm's, from TESSERA_TIMM_SRC, default /tmp/timm_src) for
    swin / convit / mobilevit under PyTorch < 2. Under PyTorch 2.x timm is not importable on this
    machine: timm imports torchvision at import time, the only torchvision present is Debian's
    build for PyTorch 1.13, and loading its C extension into PyTorch 2.x aborts the process
    ("std::system_error: Invalid argument"); there is no torchvision wheel for 2.x to install.
  * otherwise (and always for CvT: Hugging Face's transformers is not installed) the repo's
    plain-PyTorch ports in scripts/ (swin_ref.py, convit_ref.py, cvt_ref.py, mobilevit_ref.py),
    the same architecture as timm's / HF's (their goldens check logits and gradients against it).
CONFIG_JSON is the tessera registry entry's config (camelCase) plus inChans, imgSize, numClasses;
it builds the port (camelCase keys become the port's snake_case arguments). "params" in the output
is the model's parameter count, for the caller to check against the registry's.
"""
import json
import os
import re
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.normpath(os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, SCRIPTS)

from peer_timing import timed  # noqa: E402
from torch_vit import measure, parse_flags  # noqa: E402

TORCH_MAJOR = int(torch.__version__.split(".")[0])
TIMM_FAMILIES = ("swin", "convit", "mobilevit")


def snake(key):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def build_port(family, name, cfg):
    kw = {snake(k): v for k, v in cfg.items() if k not in ("inChans", "imgSize", "numClasses")}
    common = dict(in_chans=cfg["inChans"], num_classes=cfg["numClasses"], img_size=cfg["imgSize"])
    if family == "swin":
        from swin_ref import SwinTransformer
        return SwinTransformer(**common, **kw)
    if family == "convit":
        from convit_ref import ConVit
        return ConVit(**common, **kw)
    if family == "mobilevit":
        from mobilevit_ref import MobileVit
        return MobileVit(**common, **kw)
    if family == "cvt":
        from cvt_ref import CvtForImageClassification, hf_config
        return CvtForImageClassification(hf_config(num_channels=cfg["inChans"], num_labels=cfg["numClasses"], **kw))
    raise SystemExit(f"no PyTorch peer model for family {family!r} (expected one of swin, convit, cvt, mobilevit)")


def build_model(family, name, cfg):
    """(model, source): timm's model where importable here, else the repo's port."""
    if family in TIMM_FAMILIES and TORCH_MAJOR < 2:
        sys.path.insert(0, os.environ.get("TESSERA_TIMM_SRC", "/tmp/timm_src"))
        try:
            import timm
        except ImportError as e:
            sys.stderr.write(f"timm not importable ({e}); using the repo's port\n")
        else:
            if timm.is_model(name):  # the small presets are tessera's own, not timm's
                    return timm.create_model(name, num_classes=cfg["numClasses"], in_chans=cfg["inChans"]), f"timm {timm.__version__}"
    return build_port(family, name, cfg), f"scripts/{family}_ref.py"


def main(argv):
    positional, flags = parse_flags(argv[1:])
    if len(positional) < 8:
        sys.stderr.write(__doc__)
        return 2
    mode, threads, batch, repeats = positional[0], int(positional[1]), int(positional[2]), int(positional[3])
    path, family, name, cfg = positional[4], positional[5], positional[6], json.loads(positional[7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sdpa = family in ("swin", "mobilevit") and flags["attn"] == "sdpa"
    import mobilevit_ref
    import swin_ref
    swin_ref.FUSED_ATTN = mobilevit_ref.FUSED_ATTN = sdpa
    model, source = build_model(family, name, cfg)
    params = sum(p.numel() for p in model.parameters())
    image_shape = (cfg["inChans"], cfg["imgSize"], cfg["imgSize"])
    attention = "F.scaled_dot_product_attention" if sdpa else "as written (softmax(q k^T) v)"
    return measure(model, mode, path, batch, repeats, image_shape, cfg["numClasses"], flags, attention,
                   {"source": source, "params": params})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
