/**
 * Numerics over logits on the host, in float64 accumulators: the one place the trainer's and
 * eval's loss, the robust evaluation, predict and the server compute softmax and cross-entropy.
 */

/** log Σ exp(row), stable: max + log Σ exp(row − max). */
export function logSumExp(row: ArrayLike<number>): number {
  let m = -Infinity;
  for (let j = 0; j < row.length; j++) if (row[j]! > m) m = row[j]!;
  let z = 0;
  for (let j = 0; j < row.length; j++) z += Math.exp(row[j]! - m);
  return m + Math.log(z);
}

/** Row-wise numerically stable softmax of logits [B, C]. */
export function softmaxRows(logits: Float32Array, classes: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let b = 0; b < logits.length / classes; b++) {
    const row = logits.subarray(b * classes, (b + 1) * classes);
    let m = -Infinity;
    for (const v of row) if (v > m) m = v;
    let s = 0;
    for (let j = 0; j < classes; j++) s += (out[b * classes + j] = Math.exp(row[j]! - m));
    for (let j = 0; j < classes; j++) out[b * classes + j]! /= s;
  }
  return out;
}

/** Σ over the batch of −log softmax(logits)[label]: cross-entropy summed, for a mean over batches. */
export function crossEntropySum(logits: Float32Array, labels: Int32Array, classes: number): number {
  let sum = 0;
  for (let b = 0; b < labels.length; b++) {
    const row = logits.subarray(b * classes, (b + 1) * classes);
    sum += logSumExp(row) - row[labels[b]!]!;
  }
  return sum;
}
