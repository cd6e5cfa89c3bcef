"""Peer of bench/loader.ts: torchvision's ImageFolder + DataLoader with PIL on the same folder.

    torch_loader.py DIR WORKERS BATCH EPOCHS RA
RA: 'timm' — timm's rand-m9-mstd0.5-inc1 restated on PIL (timm is not a Debian package; its ops
are the PIL calls below, each applied with probability 0.5; bicubic, as timm with
--train-interpolation bicubic), or 'torchvision' —
torchvision.transforms.RandAugment(num_ops=2, magnitude=9). Prints one JSON line: images/s of
each timed epoch after a warm-up epoch (persistent workers, so worker start-up is not timed).
"""
import json
import random
import sys
import time

import torch
import torchvision
import torchvision.transforms as T
from PIL import Image, ImageEnhance, ImageOps

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FILL = tuple(round(255 * m) for m in MEAN)


def _affine(img, matrix):
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BICUBIC, fillcolor=FILL)


def _neg(v):
    return -v if random.random() > 0.5 else v


def _solarize_add(img, add):
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * 3)


def _enhance_inc(level):
    return max(0.1, 1.0 + _neg(level * 0.9))


# timm's _RAND_INCREASING_TRANSFORMS: (name, op(img, level in [0, 1]))
TIMM_INC_OPS = [
    ('AutoContrast', lambda img, l: ImageOps.autocontrast(img)),
    ('Equalize', lambda img, l: ImageOps.equalize(img)),
    ('Invert', lambda img, l: ImageOps.invert(img)),
    ('Rotate', lambda img, l: img.rotate(_neg(l * 30), resample=Image.BICUBIC, fillcolor=FILL)),
    ('PosterizeIncreasing', lambda img, l: ImageOps.posterize(img, 4 - int(l * 4)) if 4 - int(l * 4) < 8 else img),
    ('SolarizeIncreasing', lambda img, l: ImageOps.solarize(img, 256 - int(l * 256))),
    ('SolarizeAdd', lambda img, l: _solarize_add(img, int(l * 110))),
    ('ColorIncreasing', lambda img, l: ImageEnhance.Color(img).enhance(_enhance_inc(l))),
    ('ContrastIncreasing', lambda img, l: ImageEnhance.Contrast(img).enhance(_enhance_inc(l))),
    ('BrightnessIncreasing', lambda img, l: ImageEnhance.Brightness(img).enhance(_enhance_inc(l))),
    ('SharpnessIncreasing', lambda img, l: ImageEnhance.Sharpness(img).enhance(_enhance_inc(l))),
    ('ShearX', lambda img, l: _affine(img, (1, _neg(l * 0.3), 0, 0, 1, 0))),
    ('ShearY', lambda img, l: _affine(img, (1, 0, 0, _neg(l * 0.3), 1, 0))),
    ('TranslateXRel', lambda img, l: _affine(img, (1, 0, _neg(l * 0.45) * img.size[0], 0, 1, 0))),
    ('TranslateYRel', lambda img, l: _affine(img, (1, 0, 0, 0, 1, _neg(l * 0.45) * img.size[1]))),
]


class TimmRandAugment:
    """rand-m9-mstd0.5-inc1: two ops drawn with replacement, each applied with p 0.5 at N(9, 0.5) clipped to [0, 10]."""

    def __init__(self, magnitude=9, std=0.5, num_layers=2):
        self.magnitude, self.std, self.num_layers = magnitude, std, num_layers

    def __call__(self, img):
        for _ in range(self.num_layers):
            _, op = random.choice(TIMM_INC_OPS)
            if random.random() > 0.5:
                continue
            m = max(0.0, min(10.0, random.gauss(self.magnitude, self.std)))
            img = op(img, m / 10.0)
        return img


def main():
    root, workers, batch, epochs, ra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    augment = TimmRandAugment() if ra == 'timm' else T.RandAugment(num_ops=2, magnitude=9)
    transform = T.Compose([
        T.RandomResizedCrop(224, interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        augment,
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])
    dataset = torchvision.datasets.ImageFolder(root, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, drop_last=False)
    rates = []
    for epoch in range(epochs + 1):
        t0 = time.perf_counter()
        n = 0
        for x, _ in loader:
            n += x.shape[0]
        if epoch > 0:  # epoch 0 warms up (worker start, page cache)
            rates.append(n / (time.perf_counter() - t0))
    print(json.dumps({'torch': torch.__version__, 'torchvision': torchvision.__version__, 'workers': workers, 'ra': ra,
                      'images_per_second': rates}))


if __name__ == '__main__':
    main()
