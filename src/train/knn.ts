/**
 * Weighted k-NN evaluation of features, as DINO's eval_knn.py (Caron et al. 2021;
 * Wu et al. 2018's weighted vote): train and test features are L2-normalised, each test image's
 * k most cosine-similar train images vote for their labels with weight exp(similarity / T), and
 * the classes ranked by total vote give top-1 and top-5 (top-min(5, k)). k = 20, T = 0.07 are
 * DINO's reported setting.
 */
import type { BatchSource } from '../data/loader/batch_source.js';
import type { ImageModel } from '../models/model.js';
import { compile, type Executable } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';

export interface KnnOptions {
  k?: number;
  temperature?: number;
}

export interface KnnResult {
  top1: number;
  top5: number;
  k: number;
  temperature: number;
  trainImages: number;
  testImages: number;
}

/** Features [n, d] with each row scaled to unit L2 norm (F.normalize: eps 1e-12 on the norm). */
export function l2Normalise(features: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(features.length);
  for (let r = 0; r < features.length / dim; r++) {
    let sq = 0;
    for (let j = 0; j < dim; j++) sq += features[r * dim + j]! ** 2;
    const scale = 1 / Math.max(Math.sqrt(sq), 1e-12);
    for (let j = 0; j < dim; j++) out[r * dim + j] = features[r * dim + j]! * scale;
  }
  return out;
}

/**
 * Class votes [nTest, classes] of each test row from its k nearest train rows (features already
 * normalised): Σ over neighbours of exp(similarity / T) on the neighbour's label.
 */
export function knnVotes(train: Float32Array, trainLabels: ArrayLike<number>, test: Float32Array, dim: number, classes: number, { k = 20, temperature = 0.07 }: KnnOptions = {}): Float32Array {
  const nTrain = train.length / dim;
  const nTest = test.length / dim;
  if (k < 1 || k > nTrain) throw new RangeError(`k-NN needs 1 ≤ k ≤ ${nTrain} (the train images), got k = ${k}`);
  const votes = new Float32Array(nTest * classes);
  const sims = new Float64Array(nTrain);
  const order = new Int32Array(nTrain);
  for (let q = 0; q < nTest; q++) {
    for (let t = 0; t < nTrain; t++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += test[q * dim + j]! * train[t * dim + j]!;
      sims[t] = Math.fround(s);
      order[t] = t;
    }
    // the k largest similarities (ties: the lower train index first)
    const top = Array.from(order).sort((a, b) => sims[b]! - sims[a]! || a - b).slice(0, k);
    for (const t of top) votes[q * classes + trainLabels[t]!]! += Math.exp(sims[t]! / temperature);
  }
  return votes;
}

/** Top-1 and top-min(5, k) accuracy of votes against labels; ties rank the lower class first. */
export function knnAccuracy(votes: Float32Array, labels: ArrayLike<number>, classes: number, k: number): { top1: number; top5: number } {
  let top1 = 0;
  let top5 = 0;
  const n = labels.length;
  for (let q = 0; q < n; q++) {
    const row = votes.subarray(q * classes, (q + 1) * classes);
    const label = labels[q]!;
    // rank of the true class: classes with more votes (or equal votes and a lower index) come first
    let rank = 0;
    for (let c = 0; c < classes; c++) if (row[c]! > row[label]! || (row[c] === row[label] && c < label)) rank++;
    if (rank === 0) top1++;
    if (rank < Math.min(5, k)) top5++;
  }
  return { top1: top1 / n, top5: top5 / n };
}

/** Images → the model's pooled features [B, D] (what its head would see). */
export function compileFeatures(model: ImageModel, session: SessionOptions): Promise<Executable> {
  const [c, h, w] = model.inputShape;
  return compile((x) => model.forward(x).features, [{ name: 'x', shape: ['batch', c, h, w] }], session);
}

/** Features and labels of every image of a loader, in order (an unshuffled eval loader). */
export async function extractFeatures(features: Executable, loader: BatchSource, dim: number, onBatch?: (done: number, total: number) => void): Promise<{ features: Float32Array; labels: Int32Array }> {
  const out = new Float32Array(loader.length * dim);
  const labels = new Int32Array(loader.length);
  const [c, h, w] = loader.imageShape;
  let at = 0;
  for (let b = 0; b < loader.numBatches; b++) {
    const batch = await loader.batch(0, b);
    const { output } = await features.run({ x: { data: batch.x, shape: [batch.size, c, h, w] } });
    out.set(output!.data as Float32Array, at * dim);
    labels.set(batch.labels, at);
    loader.release?.(batch);
    at += batch.size;
    onBatch?.(b + 1, loader.numBatches);
  }
  return { features: out.subarray(0, at * dim), labels: labels.subarray(0, at) };
}

/** k-NN accuracy of a model's features: the train loader's images are the bank, the test loader's are queried. */
export async function knnEvaluate(model: ImageModel, trainLoader: BatchSource, testLoader: BatchSource, session: SessionOptions, opts: KnnOptions = {}, onProgress?: (what: string, done: number, total: number) => void): Promise<KnnResult> {
  const k = opts.k ?? 20;
  const temperature = opts.temperature ?? 0.07;
  const dim = model.numFeatures;
  const exe = await compileFeatures(model, session);
  try {
    const bank = await extractFeatures(exe, trainLoader, dim, (d, t) => onProgress?.('train features', d, t));
    const queries = await extractFeatures(exe, testLoader, dim, (d, t) => onProgress?.('test features', d, t));
    const classes = trainLoader.classNames.length;
    const votes = knnVotes(l2Normalise(bank.features, dim), bank.labels, l2Normalise(queries.features, dim), dim, classes, { k, temperature });
    const { top1, top5 } = knnAccuracy(votes, queries.labels, classes, k);
    return { top1, top5, k, temperature, trainImages: bank.labels.length, testImages: queries.labels.length };
  } finally {
    await exe.dispose();
  }
}
