"""Fixture of `tessera eval --json` against scikit-learn on a fixed tiny model and data (issue #24).

Run: /usr/bin/python3 scripts/make_eval_fixture.py   (Debian python3-onnx, python3-numpy, python3-sklearn)
Writes test/fixtures/eval_linear/linear.onnx and expected.json.

The model is a linear classifier written directly as an ONNX graph (Flatten → Gemm → Div by a
temperature), with the metadata_props `tessera export` writes, so `eval` runs it as any exported
.onnx file: input float32 [batch, 1, 28, 28] normalised with Fashion-MNIST's mean/std, its weights
each class's mean training image (centred) plus seeded noise, so it is right about two thirds of
the time with real confusions. Its `temperature` metadata (2.0) says the graph divides by it: eval
must multiply back, report the ECE without and with T. The data are the first 300 images of the
Debian dataset-fashion-mnist test split (`eval --dataset fashion-mnist --limit 300`); logits are
computed here with NumPy in float32 from the same pixels, and every metric by scikit-learn 1.2.1
(ECE by its definition, bins (e_i, e_i+1], the first closed). No tessera code runs here.
"""
import gzip, json, os, sys
import numpy as np, onnx, sklearn
from onnx import TensorProto, helper, numpy_helper
from sklearn import metrics as M
from sklearn.preprocessing import label_binarize

D = '/usr/share/datasets/fashion-mnist'
NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
MEAN, STD, T, N, BINS = 0.2860, 0.3530, 2.0, 300, 15

def idx(path, offset):
    with gzip.open(os.path.join(D, path)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)

train_x = idx('train-images-idx3-ubyte.gz', 16).reshape(-1, 784)[:6000].astype(np.float32)
train_y = idx('train-labels-idx1-ubyte.gz', 8)[:6000]
test_x = idx('t10k-images-idx3-ubyte.gz', 16).reshape(-1, 784)[:N]
test_y = idx('t10k-labels-idx1-ubyte.gz', 8)[:N].astype(np.int64)

rng = np.random.default_rng(24)
norm = lambda px: ((px.astype(np.float32) / np.float32(255)) - np.float32(MEAN)) / np.float32(STD)
templates = np.stack([norm(train_x[train_y == k]).mean(0) for k in range(10)])
templates -= templates.mean(0, keepdims=True)
W = (templates.T * 0.02 + rng.normal(0, 0.01, size=(784, 10))).astype(np.float32)
b = rng.normal(0, 0.1, size=10).astype(np.float32)

x = norm(test_x)
z = (x @ W + b).astype(np.float32)  # the network's logits, before the temperature

graph = helper.make_graph(
    [helper.make_node('Flatten', ['input'], ['flat'], axis=1),
     helper.make_node('Gemm', ['flat', 'W', 'b'], ['raw']),
     helper.make_node('Div', ['raw', 'T'], ['logits'])],
    'linear_fashion',
    [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['batch', 1, 28, 28])],
    [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch', 10])],
    [numpy_helper.from_array(W, 'W'), numpy_helper.from_array(b, 'b'), numpy_helper.from_array(np.array(T, np.float32), 'T')])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)
props = dict(model_name='linear_fashion', labels=json.dumps(NAMES), mean=json.dumps([MEAN]), std=json.dumps([STD]),
             input_size=json.dumps([1, 28, 28]), interpolation='bilinear', crop_pct='1', input_format='float32_nchw',
             quantization='none', temperature=str(T))
helper.set_model_props(model, props)
onnx.checker.check_model(model, full_check=True)

def softmax(v):
    e = np.exp(v - v.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)

def ece(p, y):
    conf, pred = p.max(1), p.argmax(1)
    idx_ = np.searchsorted(np.linspace(0, 1, BINS + 1)[1:-1], conf)
    return float(sum((idx_ == k).sum() / len(y) * abs((pred[idx_ == k] == y[idx_ == k]).mean() - conf[idx_ == k].mean()) for k in range(BINS) if (idx_ == k).any()))

z64 = z.astype(np.float64)
p_raw, p = softmax(z64), softmax(z64 / T)
pred = p.argmax(1)
labels = list(range(10))
pr, rc, f1, sup = M.precision_recall_fscore_support(test_y, pred, labels=labels, zero_division=0)
Y = label_binarize(test_y, classes=labels)
expected = dict(
    made_by='scripts/make_eval_fixture.py',
    versions=dict(python=sys.version.split()[0], numpy=np.__version__, onnx=onnx.__version__, sklearn=sklearn.__version__),
    limit=N, temperature=T, ece_bins=BINS,
    top1=float((pred == test_y).mean()),
    precision=pr.tolist(), recall=rc.tolist(), f1=f1.tolist(), support=sup.tolist(),
    macro={k: v for k, v in zip(('precision', 'recall', 'f1'), M.precision_recall_fscore_support(test_y, pred, labels=labels, average='macro', zero_division=0)[:3])},
    weighted={k: v for k, v in zip(('precision', 'recall', 'f1'), M.precision_recall_fscore_support(test_y, pred, labels=labels, average='weighted', zero_division=0)[:3])},
    balanced_accuracy=M.balanced_accuracy_score(test_y, pred),
    roc_auc=[M.roc_auc_score(Y[:, k], p[:, k]) for k in labels],
    average_precision=[M.average_precision_score(Y[:, k], p[:, k]) for k in labels],
    roc_auc_macro=M.roc_auc_score(test_y, p, multi_class='ovr', average='macro'),
    loss=float(M.log_loss(test_y, p_raw, labels=labels)),
    nll_with_temperature=float(M.log_loss(test_y, p, labels=labels)),
    ece_before=ece(p_raw, test_y), ece_after=ece(p, test_y),
)
os.makedirs('test/fixtures/eval_linear', exist_ok=True)
onnx.save(model, 'test/fixtures/eval_linear/linear.onnx')
json.dump(expected, open('test/fixtures/eval_linear/expected.json', 'w'), indent=1)
print('wrote test/fixtures/eval_linear', expected['versions'], 'top-1', expected['top1'], 'ECE', expected['ece_before'], expected['ece_after'])
