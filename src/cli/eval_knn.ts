/**
 * `tessera eval --knn`: weighted k-NN accuracy of a checkpoint's features (src/train/knn.ts), the
 * train split of a built-in dataset as the bank and its test split queried. Any checkpoint with
 * features works, a headless pretraining one (MAE) included; the labels are the dataset's.
 */
import { loadCheckpoint } from '../checkpoint/checkpoint.js';
import { isBuiltinDataset, loadBuiltinDataset } from '../data/datasets/builtin.js';
import { sliceDataset } from '../data/datasets/dataset.js';
import { TensorLoader } from '../data/loader/tensor_loader.js';
import { knnEvaluate } from '../train/knn.js';
import { UsageError } from './output.js';

export interface KnnFlags {
  checkpoint: string;
  dataset: string;
  dataDir?: string;
  batchSize: number;
  limit?: number;
  threads?: number;
  json?: boolean;
  knnK: number;
  knnTemperature: number;
}

export async function runKnnEval(f: KnnFlags): Promise<void> {
  if (!isBuiltinDataset(f.dataset)) throw new UsageError(`--knn evaluates on a built-in dataset's train and test splits (fashion-mnist, mnist, cifar10, cifar100); got --dataset ${f.dataset}`);
  const { model, meta } = loadCheckpoint(f.checkpoint);
  const split = async (which: 'train' | 'test') => {
    let ds = await loadBuiltinDataset(f.dataset, which, { dataDir: f.dataDir });
    if (f.limit) ds = sliceDataset(ds, 0, f.limit);
    if (ds.imageShape.join() !== model.inputShape.join()) throw new Error(`${f.checkpoint} expects ${model.inputShape.join('×')} images but ${f.dataset} has ${ds.imageShape.join('×')}`);
    return new TensorLoader(ds, { batchSize: f.batchSize, shuffle: false, seed: 0, mean: meta.mean, std: meta.std });
  };
  const [bank, queries] = [await split('train'), await split('test')];
  const result = await knnEvaluate(model, bank, queries, { threads: f.threads }, { k: f.knnK, temperature: f.knnTemperature },
    (what, done, total) => { if (!f.json && process.stderr.isTTY) process.stderr.write(`\r${what}: batch ${done}/${total}`); });
  if (!f.json && process.stderr.isTTY) process.stderr.write('\n');
  if (f.json) console.log(JSON.stringify({ checkpoint: f.checkpoint, dataset: f.dataset, knn: result }));
  else console.log(`k-NN (k = ${result.k}, T = ${result.temperature}) on ${f.dataset}: top-1 ${(100 * result.top1).toFixed(2)}%, top-5 ${(100 * result.top5).toFixed(2)}% (${result.trainImages} train features, ${result.testImages} test images)`);
}
