/**
 * A small ViT trained for a few hundred steps on a Fashion-MNIST slice (Debian's copy in
 * /usr/share/datasets), for tests that need a model that actually classifies: attacks, CLIs.
 */
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { metaFor, saveCheckpoint, type CheckpointMeta } from '../../src/checkpoint/checkpoint.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { crossEntropy } from '../../src/ops/index.js';
import { compile } from '../../src/runtime/compile.js';
import { Random } from '../../src/random.js';

export const MEAN = [0.286];
export const STD = [0.353];

export interface SmallModel {
  model: VisionTransformer;
  meta: CheckpointMeta;
  test: TensorDataset;
  /** Writes a tessera checkpoint of the model. */
  save(path: string): void;
}

/** dim 48, depth 2, 3 heads, patch 7 on 28×28 (a 4×4 grid: fast), plain Adam (lr 2e-3), batch 64. */
export async function trainSmallModel({ steps = 200, trainImages = 6400, seed = 0, threads = 1 } = {}): Promise<SmallModel> {
  const opts = { dataDir: '/usr/share/datasets/fashion-mnist' };
  const train = sliceDataset(await loadBuiltinDataset('fashion-mnist', 'train', opts), 0, trainImages);
  const test = sliceDataset(await loadBuiltinDataset('fashion-mnist', 'test', opts), 0, 500);
  const model = new VisionTransformer({ imgSize: 28, patchSize: 7, inChans: 1, numClasses: 10, embedDim: 48, depth: 2, numHeads: 3, mlpRatio: 2, seed });
  const params = model.namedParameters();
  const exe = await compile((x, y) => ({ loss: crossEntropy(model.forward(x).logits, y) }),
    [{ name: 'x', shape: ['batch', 1, 28, 28] }, { name: 'y', shape: ['batch'], dtype: 'int64' }], { grad: { wrt: 'params' }, threads });
  const m = params.map(([, p]) => new Float32Array(p.size));
  const v = params.map(([, p]) => new Float32Array(p.size));
  const rng = new Random(seed);
  const batch = 64;
  const [b1, b2, lr] = [0.9, 0.999, 2e-3];
  for (let t = 1; t <= steps; t++) {
    const x = new Float32Array(batch * 784);
    const y = new BigInt64Array(batch);
    for (let b = 0; b < batch; b++) {
      const i = rng.int(train.length);
      for (let k = 0; k < 784; k++) x[b * 784 + k] = (train.images[i * 784 + k]! / 255 - MEAN[0]!) / STD[0]!;
      y[b] = BigInt(train.labels[i]!);
    }
    const out = await exe.run({ x, y });
    params.forEach(([name, p], j) => {
      const g = out[`grad/${name}`]!.data as Float32Array;
      const w = p.data;
      for (let k = 0; k < w.length; k++) {
        m[j]![k] = b1 * m[j]![k]! + (1 - b1) * g[k]!;
        v[j]![k] = b2 * v[j]![k]! + (1 - b2) * g[k]! * g[k]!;
        w[k]! -= (lr * (m[j]![k]! / (1 - b1 ** t))) / (Math.sqrt(v[j]![k]! / (1 - b2 ** t)) + 1e-8);
      }
    });
  }
  await exe.dispose();
  const meta = { ...metaFor('vit_tiny_patch4_28', model, [...train.classNames], { mean: MEAN, std: STD }), epoch: 1 };
  return { model, meta, test, save: (path) => saveCheckpoint(path, model, meta) };
}
