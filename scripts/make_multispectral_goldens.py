"""Goldens for multispectral / 16-bit decoding and the band eval transform (issue #24).

Run: /usr/bin/python3 scripts/make_multispectral_goldens.py
Writes small TIFF/PNG fixtures with tifffile (Debian python3-tifffile 2023.02) and PIL 9.4, and
the expected model input tensors computed with NumPy: samples / (2**bits - 1), torchvision's
Resize(shorter side) size rule, PIL's 'F'-mode resize per band (float resampling), CenterCrop,
Normalize. It also writes timm's adapt_input_conv outputs (3 -> 4 and 3 -> 1 channels),
re-implemented here in plain torch after reading timm/models/_manipulate.py::adapt_input_conv
at commit aa4b5850c1543fa488abf260f18390eda46cf85d (/tmp/timm_src).
"""
import json
import math
import os

import numpy as np
import tifffile
import torch
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'multispectral')
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(24)
golden = {}

# --- files: 4 bands at 8/16/32-bit, chunky/planar, raw/deflate/packbits, strips/tiles ---------
a16 = rng.integers(0, 65536, (19, 23, 4), dtype=np.uint16)
tifffile.imwrite(os.path.join(OUT, 'b4_u16.tif'), a16, photometric='minisblack', planarconfig='contig')
tifffile.imwrite(os.path.join(OUT, 'b4_u16_planar_deflate.tif'), np.ascontiguousarray(a16.transpose(2, 0, 1)),
                 photometric='minisblack', planarconfig='separate', compression='zlib', predictor=True, rowsperstrip=5)
a8 = rng.integers(0, 256, (19, 23, 4), dtype=np.uint8)
# PIL writes it as RGBA with an extra sample (tifffile has no PackBits encoder without imagecodecs)
Image.fromarray(a8, 'RGBA').save(os.path.join(OUT, 'b4_u8_packbits.tif'), compression='packbits')
f32 = rng.random((32, 32, 5), dtype=np.float32)
tifffile.imwrite(os.path.join(OUT, 'b5_f32_tiled.tif'), f32, photometric='minisblack', planarconfig='contig', tile=(16, 16))
g16 = rng.integers(0, 65536, (19, 23), dtype=np.uint16)
Image.fromarray(g16).save(os.path.join(OUT, 'g16.png'))
golden['files'] = {
    'b4_u16.tif': {'bits': 16, 'hwc': a16.shape, 'first_pixels': a16.reshape(-1, 4)[:3].tolist(), 'sum': int(a16.astype(np.int64).sum())},
    'b4_u16_planar_deflate.tif': {'bits': 16, 'hwc': a16.shape, 'first_pixels': a16.reshape(-1, 4)[:3].tolist(), 'sum': int(a16.astype(np.int64).sum())},
    'b4_u8_packbits.tif': {'bits': 8, 'hwc': a8.shape, 'first_pixels': a8.reshape(-1, 4)[:3].tolist(), 'sum': int(a8.astype(np.int64).sum())},
    'b5_f32_tiled.tif': {'bits': 32, 'hwc': f32.shape, 'first_pixels': f32.reshape(-1, 5)[:3].tolist(), 'sum': float(f32.astype(np.float64).sum())},
    'g16.png': {'bits': 16, 'hwc': (19, 23, 1), 'first_pixels': g16.reshape(-1, 1)[:3].tolist(), 'sum': int(g16.astype(np.int64).sum())},
}


def pil_resize_bands(x, w, h, resample):
    """x: HWC float32 in [0, 1]; PIL's 'F' mode resize per band."""
    return np.stack([np.asarray(Image.fromarray(x[:, :, c], mode='F').resize((w, h), resample)) for c in range(x.shape[2])], axis=2)


def eval_tensor(x, size_hw, crop_pct, interp, mean, std):
    """timm eval: Resize(floor(size / crop_pct)) of the shorter side (torchvision's int() rule), CenterCrop, Normalize."""
    h, w = x.shape[:2]
    th, tw = size_hw
    scale = math.floor(th / crop_pct)
    if w <= h:
        rw, rh = scale, int(scale * h / w)
    else:
        rh, rw = scale, int(scale * w / h)
    if (rw, rh) != (w, h):
        x = pil_resize_bands(x, rw, rh, interp)
    top, left = int(round((rh - th) / 2.0)), int(round((rw - tw) / 2.0))
    x = x[top:top + th, left:left + tw]
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)).astype(np.float32)


mean4, std4 = [0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 0.2, 0.1]
x16 = (a16.astype(np.float64) / 65535).astype(np.float32)
golden['eval'] = [
    # crop_pct 16/19: the shorter side is already 19, so only the centre crop applies (the round-trip check of #24)
    {'file': 'b4_u16.tif', 'input_size': [4, 16, 16], 'crop_pct': 16 / 19, 'interpolation': 'bicubic', 'mean': mean4, 'std': std4,
     'tensor': eval_tensor(x16, (16, 16), 16 / 19, Image.BICUBIC, mean4, std4).ravel().tolist()},
    {'file': 'b4_u16_planar_deflate.tif', 'input_size': [4, 12, 12], 'crop_pct': 0.875, 'interpolation': 'bilinear', 'mean': mean4, 'std': std4,
     'tensor': eval_tensor(x16, (12, 12), 0.875, Image.BILINEAR, mean4, std4).ravel().tolist()},
    {'file': 'b4_u8_packbits.tif', 'input_size': [4, 16, 16], 'crop_pct': 0.9, 'interpolation': 'bicubic', 'mean': mean4, 'std': std4,
     'tensor': eval_tensor((a8.astype(np.float64) / 255).astype(np.float32), (16, 16), 0.9, Image.BICUBIC, mean4, std4).ravel().tolist()},
    {'file': 'g16.png', 'input_size': [1, 8, 8], 'crop_pct': 1.0, 'interpolation': 'bicubic', 'mean': [0.5], 'std': [0.25],
     'tensor': eval_tensor((g16.astype(np.float64) / 65535).astype(np.float32)[:, :, None], (8, 8), 1.0, Image.BICUBIC, [0.5], [0.25]).ravel().tolist()},
]

# --- timm adapt_input_conv, plain torch ---------------------------------------------------------
def adapt_input_conv(in_chans, w):
    w = w.float()
    o, i, kh, kw = w.shape
    if in_chans == 1:
        if i > 3:
            w = w.reshape(o, i // 3, 3, kh, kw).sum(dim=2)
        else:
            w = w.sum(dim=1, keepdim=True)
    elif in_chans != 3:
        repeat = int(math.ceil(in_chans / 3))
        w = w.repeat(1, repeat, 1, 1)[:, :in_chans, :, :]
        w = w * (3 / float(in_chans))
    return w


torch.manual_seed(24)
w3 = torch.randn(6, 3, 2, 2)
golden['adapt'] = {'shape': list(w3.shape), 'weight': w3.ravel().tolist(),
                   'to4': adapt_input_conv(4, w3).ravel().tolist(), 'to1': adapt_input_conv(1, w3).ravel().tolist(),
                   'to7': adapt_input_conv(7, w3).ravel().tolist()}
# --- a tiny 4-band 16-bit folder dataset and its per-channel statistics (NumPy, ddof=0, all pixels) ---
pixels = []
for cls, sizes in (('field', [(8, 8), (6, 10)]), ('water', [(7, 9)])):
    os.makedirs(os.path.join(OUT, 'stats_ds', cls), exist_ok=True)
    for k, (h, w) in enumerate(sizes):
        img = rng.integers(0, 65536, (h, w, 4), dtype=np.uint16)
        img[..., 3] //= 4  # a band with another range, so per-channel values differ
        tifffile.imwrite(os.path.join(OUT, 'stats_ds', cls, f'{k}.tif'), img, photometric='minisblack', planarconfig='contig')
        pixels.append(img.reshape(-1, 4).astype(np.float64) / 65535)
allpx = np.concatenate(pixels)
golden['stats'] = {'mean': allpx.mean(axis=0).tolist(), 'std': allpx.std(axis=0).tolist(), 'pixels': int(allpx.shape[0]), 'images': len(pixels)}

# --- tiled inference: grid positions (last row/column moved in to end at the edge), softmax per
# tile, mean/max aggregation and the per-pixel class map (highest summed probability of the
# covering tiles), for given per-tile logits ------------------------------------------------------
def starts(size, tile, stride):
    t = min(tile, size)
    s = list(range(0, size - t + 1, stride))
    if s[-1] + t < size:
        s.append(size - t)
    return s


tiled = []
for (w, h, tile, stride, k) in ((37, 29, 16, 10, 3), (64, 64, 32, 16, 2), (20, 50, 24, 24, 4), (30, 30, 30, 15, 2)):
    xs, ys = starts(w, tile, stride), starts(h, tile, stride)
    boxes = [(x, y, min(tile, w), min(tile, h)) for y in ys for x in xs]
    logits = rng.standard_normal((len(boxes), k)).astype(np.float32)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    acc = np.zeros((h, w, k))
    for (x, y, bw, bh), pr in zip(boxes, p):
        acc[y:y + bh, x:x + bw] += pr
    tiled.append({'width': w, 'height': h, 'tile': tile, 'stride': stride, 'classes': k, 'boxes': boxes, 'logits': logits.ravel().tolist(),
                  'mean': p.mean(0).tolist(), 'max': p.max(0).tolist(), 'class_map': acc.argmax(2).ravel().tolist()})
golden['tiled'] = tiled

golden['reference'] = 'timm aa4b5850c1543fa488abf260f18390eda46cf85d adapt_input_conv; PIL ' + Image.__version__ + '; tifffile ' + tifffile.__version__
with open(os.path.join(OUT, 'goldens.json'), 'w') as f:
    json.dump(golden, f)
print('wrote', OUT)
