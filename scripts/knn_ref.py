"""Goldens of test/train/knn.test.ts: DINO's weighted k-NN classifier on fixed features.

Re-written (not copied) from facebookresearch/dino eval_knn.py (knn_classifier and the
F.normalize before it) at commit 7c446df5b9f45747937fb0d72314eb9f7b66930a, read through the fetch
tool; torch's topk and sort pick the neighbours and rank the classes.

Writes test/fixtures/knn_goldens.json: train features [40, 6] with labels over 4 classes, test
features [15, 6] with labels, and for (k, T) in (20, 0.07), (3, 0.5): the class votes, top-1 and
top-5 (in [0, 1]).

Run from the repository root:  /usr/bin/python3 scripts/knn_ref.py
"""
import json
import os

import torch
import torch.nn.functional as F

DINO_COMMIT = "7c446df5b9f45747937fb0d72314eb9f7b66930a"


def knn(train, train_labels, test, test_labels, k, T, classes):
    train = F.normalize(train, dim=1, p=2)
    test = F.normalize(test, dim=1, p=2)
    sim = test @ train.t()
    dist, idx = sim.topk(k, largest=True, sorted=True)
    neighbours = torch.gather(train_labels.view(1, -1).expand(test.shape[0], -1), 1, idx)
    one_hot = torch.zeros(test.shape[0] * k, classes).scatter_(1, neighbours.view(-1, 1), 1)
    votes = (one_hot.view(test.shape[0], k, classes) * (dist / T).exp().view(test.shape[0], k, 1)).sum(1)
    _, pred = votes.sort(1, True)
    correct = pred.eq(test_labels.view(-1, 1))
    return votes, correct[:, :1].sum().item() / len(test_labels), correct[:, :min(5, k)].sum().item() / len(test_labels)


def main():
    g = torch.Generator().manual_seed(0)
    classes = 4
    centres = torch.randn(classes, 6, generator=g)
    train_labels = torch.arange(40) % classes
    test_labels = torch.randint(0, classes, (15,), generator=g)
    train = centres[train_labels] + 0.9 * torch.randn(40, 6, generator=g)
    test = centres[test_labels] + 0.9 * torch.randn(15, 6, generator=g)
    out = {"dino_commit": DINO_COMMIT, "classes": classes, "dim": 6, "train": train.flatten().tolist(), "train_labels": train_labels.tolist(),
           "test": test.flatten().tolist(), "test_labels": test_labels.tolist(), "cases": []}
    for k, T in [(20, 0.07), (3, 0.5)]:
        votes, top1, top5 = knn(train, train_labels, test, test_labels, k, T, classes)
        out["cases"].append({"k": k, "T": T, "votes": votes.flatten().tolist(), "top1": top1, "top5": top5})
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "fixtures", "knn_goldens.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path, [(c["k"], c["top1"], c["top5"]) for c in out["cases"]])


if __name__ == "__main__":
    main()
