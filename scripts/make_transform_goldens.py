#!/usr/bin/python3
"""Goldens for tessera's image transforms, from torchvision + PIL (Debian python3-torchvision,
python3-pil): writes test/fixtures/transforms/ (small PNG inputs, PNG outputs, cases.json).

    /usr/bin/python3 scripts/make_transform_goldens.py

Deterministic transforms only (random ones get statistical tests): Resize (bilinear, bicubic,
down and up), CenterCrop (Python rounding, padding), the timm eval transform, flips, ToTensor +
Normalize, RandomResizedCrop's resized_crop at fixed boxes, grayscale, and timm's RandAugment
ops / torchvision's ColorJitter ops at fixed arguments (timm's op functions are restated below:
timm itself is not a Debian package).
"""
import json
import math
import os

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image, ImageEnhance, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'transforms')
BILINEAR, BICUBIC = T.InterpolationMode.BILINEAR, T.InterpolationMode.BICUBIC


def photo(w, h, seed):
    """A smooth photo-like RGB image: gradients, soft blobs and a gentle texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 60 * (a * x / w + b * y / h)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.3) * min(w, h)
        colour = rng.uniform(-90, 90, 3)
        img += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None] * colour
    img += 12 * np.sin(x / 3.1 + y / 4.7)[..., None]
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), 'RGB')


def save(img, name):
    img.save(os.path.join(OUT, name))
    return name


# timm/data/auto_augment.py's op functions (fixed arguments; no randomness)
def shear_x(img, f, resample, fill):
    return img.transform(img.size, Image.AFFINE, (1, f, 0, 0, 1, 0), resample=resample, fillcolor=fill)


def shear_y(img, f, resample, fill):
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, f, 1, 0), resample=resample, fillcolor=fill)


def translate_x_rel(img, pct, resample, fill):
    return img.transform(img.size, Image.AFFINE, (1, 0, pct * img.size[0], 0, 1, 0), resample=resample, fillcolor=fill)


def translate_y_rel(img, pct, resample, fill):
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, pct * img.size[1]), resample=resample, fillcolor=fill)


def solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def main():
    os.makedirs(OUT, exist_ok=True)
    inputs = {
        'photo': save(photo(67, 50, 1), 'photo.png'),            # 67×50: odd sizes, landscape
        'large': save(photo(150, 113, 2), 'large.png'),          # 2.5× and more downscaling
        'portrait': save(photo(41, 58, 3), 'portrait.png'),
        'gray': save(photo(45, 60, 4).convert('L'), 'gray.png'),
    }
    img = {k: Image.open(os.path.join(OUT, v)) for k, v in inputs.items()}
    cases = []

    def case(name, source, op, params, out):
        entry = {'name': name, 'input': inputs[source], 'op': op, 'params': params}
        if isinstance(out, Image.Image):
            entry['expected'] = save(out, f'{name}.png')
        else:
            entry['values'] = [round(float(v), 6) for v in out]
        cases.append(entry)

    # torchvision Resize(int): shorter side, antialiased PIL resampling
    for src, size in [('photo', 32), ('photo', 100), ('large', 48), ('portrait', 24), ('gray', 37)]:
        for interp, mode in [('bilinear', BILINEAR), ('bicubic', BICUBIC)]:
            case(f'resize_{src}_{size}_{interp}', src, 'resize', {'size': size, 'interpolation': interp}, T.Resize(size, interpolation=mode)(img[src]))
    # CenterCrop: offsets round((h − th) / 2) with Python's half-to-even; padding when larger
    case('center_crop_photo_45x62', 'photo', 'center_crop', {'height': 45, 'width': 62}, T.CenterCrop((45, 62))(img['photo']))
    case('center_crop_photo_21x30', 'photo', 'center_crop', {'height': 21, 'width': 30}, T.CenterCrop((21, 30))(img['photo']))
    case('center_crop_gray_pad_56', 'gray', 'center_crop', {'height': 56, 'width': 56}, T.CenterCrop(56)(img['gray']))
    # timm's eval transform: Resize(floor(size / crop_pct)) + CenterCrop(size)
    for src, size, crop_pct, interp, mode in [('photo', 32, 0.875, 'bicubic', BICUBIC), ('large', 64, 0.9, 'bilinear', BILINEAR),
                                              ('portrait', 28, 0.95, 'bicubic', BICUBIC)]:
        t = T.Compose([T.Resize(math.floor(size / crop_pct), interpolation=mode), T.CenterCrop(size)])
        case(f'eval_{src}_{size}_{interp}', src, 'eval', {'size': size, 'crop_pct': crop_pct, 'interpolation': interp}, t(img[src]))
    case('hflip_photo', 'photo', 'hflip', {}, F.hflip(img['photo']))
    case('vflip_photo', 'photo', 'vflip', {}, F.vflip(img['photo']))
    case('grayscale_photo', 'photo', 'grayscale', {}, img['photo'].convert('L'))
    # ToTensor + Normalize on a 4×3 crop (ImageNet mean/std)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    crop = F.crop(img['photo'], 10, 20, 3, 4)
    case('normalize_photo', 'photo', 'normalize', {'top': 10, 'left': 20, 'height': 3, 'width': 4, 'mean': mean, 'std': std},
         T.Normalize(mean, std)(T.ToTensor()(crop)).flatten().tolist())
    # RandomResizedCrop = F.resized_crop at the box get_params drew: fixed boxes here
    for src, (top, left, h, w), size in [('photo', (5, 7, 40, 52), 24), ('photo', (12, 20, 18, 14), 32), ('large', (3, 11, 100, 90), 40)]:
        for interp, mode in [('bilinear', BILINEAR), ('bicubic', BICUBIC)]:
            case(f'rrc_{src}_{top}_{left}_{h}_{w}_{size}_{interp}', src, 'resized_crop',
                 {'top': top, 'left': left, 'height': h, 'width': w, 'size': size, 'interpolation': interp},
                 F.resized_crop(img[src], top, left, h, w, [size, size], interpolation=mode))

    # timm RandAugment ops (PIL) at fixed arguments
    p, fill = img['photo'], (124, 116, 104)
    pil_ops = [
        ('auto_contrast', {}, ImageOps.autocontrast(p)),
        ('equalize', {}, ImageOps.equalize(p)),
        ('invert', {}, ImageOps.invert(p)),
        ('posterize', {'bits': 2}, ImageOps.posterize(p, 2)),
        ('solarize', {'threshold': 100}, ImageOps.solarize(p, 100)),
        ('solarize_add', {'add': 60}, solarize_add(p, 60)),
        ('color', {'factor': 1.62}, ImageEnhance.Color(p).enhance(1.62)),
        ('color', {'factor': 0.28}, ImageEnhance.Color(p).enhance(0.28)),
        ('contrast', {'factor': 0.46}, ImageEnhance.Contrast(p).enhance(0.46)),
        ('contrast', {'factor': 1.72}, ImageEnhance.Contrast(p).enhance(1.72)),
        ('brightness', {'factor': 1.33}, ImageEnhance.Brightness(p).enhance(1.33)),
        ('sharpness', {'factor': 1.9}, ImageEnhance.Sharpness(p).enhance(1.9)),
        ('sharpness', {'factor': 0.1}, ImageEnhance.Sharpness(p).enhance(0.1)),
        ('hue', {'factor': 0.13}, F.adjust_hue(p, 0.13)),
        ('hue', {'factor': -0.31}, F.adjust_hue(p, -0.31)),
    ]
    for interp, mode in [('bilinear', Image.BILINEAR), ('bicubic', Image.BICUBIC)]:
        pil_ops += [
            ('rotate', {'degrees': 17.3, 'interpolation': interp, 'fill': fill}, p.rotate(17.3, resample=mode, fillcolor=fill)),
            ('rotate', {'degrees': -26.0, 'interpolation': interp, 'fill': fill}, p.rotate(-26.0, resample=mode, fillcolor=fill)),
            ('shear_x', {'factor': 0.21, 'interpolation': interp, 'fill': fill}, shear_x(p, 0.21, mode, fill)),
            ('shear_y', {'factor': -0.27, 'interpolation': interp, 'fill': fill}, shear_y(p, -0.27, mode, fill)),
            ('translate_x_rel', {'pct': -0.405, 'interpolation': interp, 'fill': fill}, translate_x_rel(p, -0.405, mode, fill)),
            ('translate_y_rel', {'pct': 0.3, 'interpolation': interp, 'fill': fill}, translate_y_rel(p, 0.3, mode, fill)),
        ]
    for i, (op, params, out) in enumerate(pil_ops):
        case(f'op_{i:02d}_{op}', 'photo', op, params, out)

    meta = {'generator': 'scripts/make_transform_goldens.py', 'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'pil': PIL.__version__, 'cases': cases}
    with open(os.path.join(OUT, 'cases.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')
    print(f'wrote {len(cases)} cases to {os.path.normpath(OUT)}')


if __name__ == '__main__':
    main()
