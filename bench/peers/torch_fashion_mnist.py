"""PyTorch peer of tessera's default training recipe (vit_tiny_patch4_28 on Fashion-MNIST).

Usage:

    /usr/bin/python3 bench/peers/torch_fashion_mnist.py --threads 2 --epochs 10 \\
        [--train-limit N] [--data /usr/share/datasets/fashion-mnist] [--seed 42]

Trains the same model with the same recipe as ``tessera train`` with its
defaults, in eager PyTorch on the CPU, so the two can be compared for speed
and accuracy:

* data: the four gzip IDX files in --data (train-images-idx3-ubyte.gz,
  train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
  t10k-labels-idx1-ubyte.gz), read with gzip + struct + torch.frombuffer,
  scaled to [0, 1] and normalised with mean 0.2860, std 0.3530, held in
  memory as one tensor (no DataLoader, no workers); --train-limit N keeps the
  first N training images;
* model: ``VisionTransformer`` from scripts/timm_vit.py with img_size 28,
  patch 4, 1 channel, 10 classes, embed_dim 96, depth 6, 3 heads,
  mlp_ratio 2, class-token pooling (tessera's vit_tiny_patch4_28), timm init;
* optimiser: AdamW lr 2e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.05
  on every parameter except 1-D ones (biases, norms), pos_embed and
  cls_token;
* schedule, per optimiser step (tessera's makeSchedule / timm with
  t_in_epochs=False): a linear warmup over the first epoch's steps from 1e-6
  to 2e-3, lr(s) = 1e-6 + s * (2e-3 - 1e-6) / warmup_steps, then half a
  cosine from 2e-3 down to 1e-5 over the remaining steps;
* batch 128, reshuffled every epoch with a torch.Generator seeded 0, last
  partial batch kept; per-sample random horizontal flip with p = 0.5; mean
  cross-entropy with label smoothing 0.1;
* after each epoch: top-1 on the 10,000 test images (model.eval(),
  torch.no_grad(), batch 500).

stdout, one JSON line per epoch and a summary line:

    {"epoch": e, "seconds": s, "images_per_second": r, "train_loss": l, "test_top1": a, "eval_seconds": t}
    {"final": true, "test_top1": a, "seconds_per_epoch": median}

``seconds`` times the training loop of the epoch only (not evaluation, not
file IO); ``images_per_second`` is training images / seconds; ``train_loss``
is the mean smoothed loss over the epoch's images; ``test_top1`` is a
fraction in [0, 1].  Only torch and the standard library are used.
"""

import argparse
import gzip
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "scripts")))

from timm_vit import VisionTransformer  # noqa: E402

MEAN, STD = 0.2860, 0.3530
LR, WARMUP_LR, MIN_LR = 2e-3, 1e-6, 1e-5
WEIGHT_DECAY = 0.05
BATCH, EVAL_BATCH = 128, 500
SMOOTHING = 0.1
HFLIP = 0.5
WARMUP_EPOCHS = 1


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------

def read_idx(path):
    """A gzip IDX file as a uint8 tensor of the shape its header gives."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = 1
    for d in dims:
        count *= d
    if len(raw) - offset != count:
        raise ValueError("%s: expected %d bytes of data, found %d" % (path, count, len(raw) - offset))
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=offset, count=count)
    return data.reshape(*dims)


def load_split(data_dir, prefix, limit=None):
    images = read_idx(os.path.join(data_dir, "%s-images-idx3-ubyte.gz" % prefix))
    labels = read_idx(os.path.join(data_dir, "%s-labels-idx1-ubyte.gz" % prefix))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = (images.to(torch.float32).div_(255.0).sub_(MEAN).div_(STD)).unsqueeze(1).contiguous()
    return x, labels.to(torch.int64)


# ----------------------------------------------------------------------------
# recipe
# ----------------------------------------------------------------------------

def make_model():
    return VisionTransformer(
        img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=96,
        depth=6, num_heads=3, mlp_ratio=2.0, global_pool="token",
    )


def param_groups(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name in ("pos_embed", "cls_token", "dist_token"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": WEIGHT_DECAY},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_schedule(total_steps, warmup_steps):
    """lr(step): tessera's makeSchedule(kind='cosine')."""
    span = max(1, total_steps - warmup_steps)

    def lr(step):
        if step < warmup_steps:
            return WARMUP_LR + step * (LR - WARMUP_LR) / warmup_steps
        t = min(step - warmup_steps, span)
        return MIN_LR + 0.5 * (LR - MIN_LR) * (1.0 + math.cos(math.pi * t / span))

    return lr


def random_hflip(x, gen):
    flip = torch.rand(x.shape[0], generator=gen) < HFLIP
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], EVAL_BATCH):
            logits = model(x[i:i + EVAL_BATCH])
            correct += int((logits.argmax(dim=1) == y[i:i + EVAL_BATCH]).sum())
    return correct / x.shape[0]


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    ap.add_argument("--train-limit", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="directory with the gzip IDX files")
    ap.add_argument("--seed", type=int, default=42, help="seed of initialisation and flips (default 42)")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.train_limit is not None and args.train_limit < 1:
        ap.error("--train-limit must be positive")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x_train, y_train = load_split(args.data, "train", args.train_limit)
    x_test, y_test = load_split(args.data, "t10k")
    n = x_train.shape[0]

    model = make_model()
    opt = torch.optim.AdamW(param_groups(model), lr=LR, betas=(0.9, 0.999), eps=1e-8)

    steps_per_epoch = math.ceil(n / BATCH)
    schedule = make_schedule(args.epochs * steps_per_epoch, round(WARMUP_EPOCHS * steps_per_epoch))
    shuffle_gen = torch.Generator().manual_seed(0)
    aug_gen = torch.Generator().manual_seed(args.seed)

    step = 0
    epoch_seconds = []
    top1 = 0.0
    for epoch in range(args.epochs):
        model.train()
        loss_sum = 0.0
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=shuffle_gen)
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            xb = random_hflip(x_train.index_select(0, idx), aug_gen)
            yb = y_train.index_select(0, idx)
            lr = schedule(step)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(model(xb), yb, label_smoothing=SMOOTHING)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss) * idx.shape[0]
            step += 1
        seconds = time.perf_counter() - t0
        epoch_seconds.append(seconds)
        if not math.isfinite(loss_sum):
            raise SystemExit("training diverged at epoch %d" % (epoch + 1))

        t1 = time.perf_counter()
        top1 = evaluate(model, x_test, y_test)
        eval_seconds = time.perf_counter() - t1
        emit({
            "epoch": epoch + 1,
            "seconds": round(seconds, 3),
            "images_per_second": round(n / seconds, 1),
            "train_loss": round(loss_sum / n, 5),
            "test_top1": round(top1, 4),
            "eval_seconds": round(eval_seconds, 3),
        })

    emit({"final": True, "test_top1": round(top1, 4),
          "seconds_per_epoch": round(statistics.median(epoch_seconds), 3)})


if __name__ == "__main__":
    main()
