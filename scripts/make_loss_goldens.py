"""Goldens for the supervised loss options (--class-weights, --loss focal): test/fixtures/loss_goldens.json.

Own plain-PyTorch reference (Debian python3-torch 1.13, float64) of
  L = sum_n s_n sum_c t_nc (1 - p_nc)^gamma (-log p_nc) / sum_n s_n,  s_n = sum_c w_c t_nc,  p = softmax(logits),
checked inside this script against PyTorch's own F.cross_entropy(weight=w) for one-hot targets and
gamma = 0, and against a per-sample hard-label focal loss -w_y (1 - p_y)^gamma log p_y averaged with
the weights (Lin et al. 2017's alpha-balanced form with alpha = w). Gradients by autograd.
The balanced class weights come from scikit-learn's compute_class_weight.
Run: /usr/bin/python3 scripts/make_loss_goldens.py
"""
import json
import os
import torch
import torch.nn.functional as F

torch.manual_seed(0)
N, C = 6, 4


def loss(logits, targets, w, gamma):
    logp = F.log_softmax(logits, -1)
    per = (targets * -logp * (1 - logp.exp()) ** gamma).sum(-1)
    s = (targets * w).sum(-1)
    return (s * per).sum() / s.sum()


cases = []
labels = torch.tensor([0, 1, 2, 3, 0, 0])
onehot = F.one_hot(labels, C).double()
smooth = onehot * 0.9 + 0.1 / C
w = torch.tensor([0.5, 2.0, 1.0, 4.0], dtype=torch.float64)
for name, targets, weights, gamma in [
    ('weighted, one-hot', onehot, w, 0.0),
    ('weighted, smoothed', smooth, w, 0.0),
    ('focal gamma 2, one-hot', onehot, torch.ones(C, dtype=torch.float64), 2.0),
    ('focal gamma 2, weighted, smoothed', smooth, w, 2.0),
    ('focal gamma 1.5, weighted, one-hot', onehot, w, 1.5),
]:
    logits = (torch.randn(N, C, dtype=torch.float64) * 2).requires_grad_()
    value = loss(logits, targets, weights, gamma)
    (g,) = torch.autograd.grad(value, logits)
    if targets is onehot:
        if gamma == 0:
            ref = F.cross_entropy(logits, labels, weight=weights)
        else:
            logp_y = F.log_softmax(logits, -1).gather(1, labels[:, None])[:, 0]
            wy = weights[labels]
            ref = (-wy * (1 - logp_y.exp()) ** gamma * logp_y).sum() / wy.sum()
        assert abs(ref.item() - value.item()) < 1e-12, (name, ref.item(), value.item())
    cases.append({
        'name': name, 'gamma': gamma, 'weights': weights.tolist(),
        'logits': logits.detach().flatten().tolist(), 'targets': targets.flatten().tolist(), 'shape': [N, C],
        'loss': value.item(), 'grad': g.flatten().tolist(),
    })

# --class-weights balanced: sklearn's compute_class_weight on a 20:1:5 label set (Debian python3-sklearn)
from sklearn.utils.class_weight import compute_class_weight
import numpy as np
y = np.array([0] * 20 + [1] * 1 + [2] * 5)
balanced = {'counts': [20, 1, 5], 'weights': compute_class_weight('balanced', classes=np.arange(3), y=y).tolist()}

out = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'loss_goldens.json')
with open(out, 'w') as f:
    json.dump({'torch': torch.__version__, 'cases': cases, 'balanced': balanced}, f)
print('wrote', out, len(cases), 'cases')
