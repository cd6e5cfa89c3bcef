"""Goldens for temperature scaling and the eval metrics report (issue #24).

Run: /usr/bin/python3 scripts/make_calibration_goldens.py   (Debian torch 1.13, python3-sklearn, python3-scipy)
Writes test/fixtures/calibration_goldens.json:
- `temperature`: fixed, seeded logits (over- and under-confident, 2 and 10 classes) and the T that
  minimises the mean NLL of softmax(logits / T), fitted here with PyTorch's LBFGS (strong Wolfe
  line search, float64, on log T so T stays positive) and cross-checked against SciPy's bounded
  scalar minimiser; the two agree to < 1e-7 or the script stops.
- `report`: logits and labels of a 3-class and a binary case with a temperature, and
  scikit-learn's metrics of softmax(logits / T) (per-class P/R/F1/support, macro/weighted,
  balanced accuracy, one-vs-rest ROC-AUC and average precision, macro ROC-AUC, sensitivity and
  specificity at a threshold) plus ECE by its definition (equal-width bins (e_i, e_i+1], the first
  closed) before and after T. No tessera code runs here.
"""
import json, sys
import numpy as np, scipy, sklearn, torch
from scipy.optimize import minimize_scalar
from sklearn import metrics as M
from sklearn.preprocessing import label_binarize

rng = np.random.default_rng(2024)
torch.set_default_dtype(torch.float64)

def make_logits(n, c, scale, accuracy_bias):
    y = rng.integers(0, c, size=n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += accuracy_bias
    # a third of the images get a wrong class pushed up: over-confident mistakes
    wrong = rng.random(n) < 0.3
    z[wrong, (y[wrong] + 1) % c] += accuracy_bias * 1.5
    return (z * scale).astype(np.float32).astype(np.float64), y

def nll(z, y, t):
    s = z / t
    m = s.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(1))
    return float((lse - s[np.arange(len(y)), y]).mean())

def fit_torch(z, y):
    logt = torch.zeros(1, requires_grad=True)
    Z, Y = torch.tensor(z), torch.tensor(y)
    opt = torch.optim.LBFGS([logt], lr=1, max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16, line_search_fn='strong_wolfe')
    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Z / logt.exp(), Y)
        loss.backward()
        return loss
    for _ in range(5):
        opt.step(closure)
    return float(logt.exp())

def temperature_case(name, n, c, scale, bias):
    z, y = make_logits(n, c, scale, bias)
    t = fit_torch(z, y)
    ts = minimize_scalar(lambda t: nll(z, y, t), bounds=(0.01, 100), method='bounded', options=dict(xatol=1e-12)).x
    assert abs(t - ts) < 1e-7 * max(1, t), (name, t, ts)
    return dict(name=name, classes=c, logits=z.tolist(), labels=y.tolist(), temperature=t,
                nll_before=nll(z, y, 1.0), nll_after=nll(z, y, t))

def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)

def ece(p, y, bins):
    conf, pred = p.max(1), p.argmax(1)
    idx = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], conf)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(y) * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(total)

def report_case(name, n, c, t, threshold=None, positive=None):
    z, y = make_logits(n, c, 2.5, 1.0)
    p_raw, p = softmax(z), softmax(z / t)
    pred = p.argmax(1)
    pr, rc, f1, sup = M.precision_recall_fscore_support(y, pred, labels=list(range(c)), zero_division=0)
    out = dict(name=name, classes=c, temperature=t, logits=z.tolist(), labels=y.tolist(),
               precision=pr.tolist(), recall=rc.tolist(), f1=f1.tolist(), support=sup.tolist(),
               balanced_accuracy=M.balanced_accuracy_score(y, pred), ece_bins=15,
               ece_before=ece(p_raw, y, 15), ece_after=ece(p, y, 15), nll_after=nll(z, y, t))
    for avg in ('macro', 'weighted'):
        a = M.precision_recall_fscore_support(y, pred, labels=list(range(c)), average=avg, zero_division=0)
        out[avg] = dict(precision=a[0], recall=a[1], f1=a[2])
    Y = label_binarize(y, classes=list(range(c))) if c > 2 else np.stack([1 - y, y], 1)
    out['roc_auc'] = [M.roc_auc_score(Y[:, k], p[:, k]) for k in range(c)]
    out['average_precision'] = [M.average_precision_score(Y[:, k], p[:, k]) for k in range(c)]
    out['roc_auc_macro'] = M.roc_auc_score(y, p, multi_class='ovr', average='macro') if c > 2 else M.roc_auc_score(y, p[:, 1])
    out['average_precision_macro'] = float(np.mean(out['average_precision']))
    if threshold is not None:
        yp = (p[:, positive] >= threshold).astype(int)
        tn, fp, fn, tp = M.confusion_matrix((y == positive).astype(int), yp, labels=[0, 1]).ravel()
        out['threshold'] = dict(threshold=threshold, positive=positive, sensitivity=tp / (tp + fn), specificity=tn / (tn + fp))
    return out

goldens = dict(
    made_by='scripts/make_calibration_goldens.py',
    versions=dict(python=sys.version.split()[0], numpy=np.__version__, torch=torch.__version__, scipy=scipy.__version__, sklearn=sklearn.__version__),
    temperature=[
        temperature_case('overconfident_10', 400, 10, 4.0, 1.0),
        temperature_case('underconfident_10', 400, 10, 0.4, 1.5),
        temperature_case('binary_overconfident', 300, 2, 3.0, 0.8),
    ],
    report=[report_case('three_class', 240, 3, 1.7), report_case('binary', 200, 2, 2.2, threshold=0.4, positive=1)],
)
json.dump(goldens, open('test/fixtures/calibration_goldens.json', 'w'))
print('wrote test/fixtures/calibration_goldens.json', goldens['versions'], [(c['name'], c['temperature']) for c in goldens['temperature']])
