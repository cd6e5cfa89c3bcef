"""Goldens for src/metrics (issue #24): scikit-learn's metrics on fixed, seeded predictions.

Run: /usr/bin/python3 scripts/make_metrics_goldens.py  (Debian python3-sklearn, python3-numpy)
Writes test/fixtures/metrics_goldens.json. Probabilities are rounded to 2 decimals, so scores tie;
the binary case has a 1:20 imbalance (400 negatives, 20 positives). ECE has no sklearn function:
it is computed here by its definition with NumPy (equal-width bins (e_i, e_i+1], the first closed,
as sklearn.calibration.calibration_curve's searchsorted assigns them).
"""
import json, sys
import numpy as np, sklearn
from sklearn import metrics as M
from sklearn.preprocessing import label_binarize

rng = np.random.default_rng(24)

def rounded_probs(n, c, skew):
    logits = rng.normal(size=(n, c)) * 1.5 + skew
    p = np.exp(logits); p /= p.sum(1, keepdims=True)
    p = np.round(p, 2); p[:, -1] = 1 - p[:, :-1].sum(1)
    p = np.clip(p, 0, 1); p /= p.sum(1, keepdims=True)
    return p

def ece(p, y, bins):
    conf = p.max(1); pred = p.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.searchsorted(edges[1:-1], conf)
    rows = []
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.sum() == 0:
            rows.append(dict(count=0, accuracy=None, confidence=None)); continue
        acc = float((pred[m] == y[m]).mean()); cf = float(conf[m].mean())
        total += m.sum() / len(y) * abs(acc - cf)
        rows.append(dict(count=int(m.sum()), accuracy=acc, confidence=cf))
    return float(total), rows

def case(name, y, p, bins, threshold=None, positive=None):
    c = p.shape[1]
    pr, rc, f1, sup = M.precision_recall_fscore_support(y, p.argmax(1), labels=list(range(c)), zero_division=0)
    out = dict(name=name, labels=y.tolist(), probs=p.tolist(), classes=c,
               precision=pr.tolist(), recall=rc.tolist(), f1=f1.tolist(), support=sup.tolist(),
               balanced_accuracy=M.balanced_accuracy_score(y, p.argmax(1)))
    for avg in ('macro', 'weighted'):
        a = M.precision_recall_fscore_support(y, p.argmax(1), labels=list(range(c)), average=avg, zero_division=0)
        out[avg] = dict(precision=a[0], recall=a[1], f1=a[2])
    Y = label_binarize(y, classes=list(range(c))) if c > 2 else np.stack([1 - y, y], 1)
    out['roc_auc'] = [M.roc_auc_score(Y[:, k], p[:, k]) for k in range(c)]
    out['average_precision'] = [M.average_precision_score(Y[:, k], p[:, k]) for k in range(c)]
    out['roc_auc_macro'] = M.roc_auc_score(y, p, multi_class='ovr', average='macro') if c > 2 else M.roc_auc_score(y, p[:, 1])
    curves = []
    for k in range(c):
        fpr, tpr, _ = M.roc_curve(Y[:, k], p[:, k], drop_intermediate=False)
        prec, rec, _ = M.precision_recall_curve(Y[:, k], p[:, k])
        curves.append(dict(fpr=fpr.tolist(), tpr=tpr.tolist(), precision=prec.tolist(), recall=rec.tolist()))
    out['curves'] = curves
    out['ece_bins'] = bins
    out['ece'], out['reliability'] = ece(p, y, bins)
    if threshold is not None:
        pred = (p[:, positive] >= threshold).astype(int)
        tn, fp, fn, tp = M.confusion_matrix((y == positive).astype(int), pred, labels=[0, 1]).ravel()
        out['threshold'] = dict(threshold=threshold, positive=positive, sensitivity=tp / (tp + fn), specificity=tn / (tn + fp))
    return out

yb = np.array([0] * 400 + [1] * 20); rng.shuffle(yb)
pb = rounded_probs(420, 2, 0) ; pb[yb == 1] = rounded_probs(20, 2, np.array([0, 1.2]))
ym = rng.choice(4, size=300, p=[0.6, 0.25, 0.1, 0.05])
pm = rounded_probs(300, 4, 0)
pm[np.arange(300), ym] += 0.3; pm /= pm.sum(1, keepdims=True); pm = np.round(pm, 2); pm[:, -1] = 1 - pm[:, :-1].sum(1)
pm = np.clip(pm, 0, 1); pm /= pm.sum(1, keepdims=True)

goldens = dict(
    made_by='scripts/make_metrics_goldens.py',
    versions=dict(python=sys.version.split()[0], numpy=np.__version__, sklearn=sklearn.__version__),
    cases=[case('binary_1to20', yb, pb, 10, threshold=0.3, positive=1), case('multiclass_4', ym, pm, 15)],
)
json.dump(goldens, open('test/fixtures/metrics_goldens.json', 'w'))
print('wrote test/fixtures/metrics_goldens.json', goldens['versions'])
