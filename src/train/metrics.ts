/** Classification metrics as folds over batches of logits. */

export interface ClassificationTally {
  count: number;
  lossSum: number;
  top1: number;
  top5: number;
  /** confusion[true][pred] */
  confusion: number[][];
}

export function emptyTally(numClasses: number): ClassificationTally {
  return { count: 0, lossSum: 0, top1: 0, top5: 0, confusion: Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0)) };
}

/** Adds a batch: logits [B, C] row-major, integer labels, and the batch's summed loss. */
export function tallyBatch(t: ClassificationTally, logits: Float32Array, labels: ArrayLike<number>, lossSum: number): ClassificationTally {
  const c = t.confusion.length;
  const k = Math.min(5, c);
  for (let b = 0; b < labels.length; b++) {
    const row = logits.subarray(b * c, (b + 1) * c);
    const label = labels[b]!;
    let pred = 0;
    for (let j = 1; j < c; j++) if (row[j]! > row[pred]!) pred = j;
    // rank of the true class = number of classes scoring strictly higher
    let higher = 0;
    for (let j = 0; j < c; j++) if (row[j]! > row[label]!) higher++;
    if (pred === label) t.top1++;
    if (higher < k) t.top5++;
    t.confusion[label]![pred]!++;
  }
  t.count += labels.length;
  t.lossSum += lossSum;
  return t;
}

export interface ClassificationSummary {
  top1: number;
  top5: number;
  loss: number;
  count: number;
  perClass: { name: string; accuracy: number; count: number }[];
  confusion: number[][];
}

export function summarize(t: ClassificationTally, classNames: readonly string[]): ClassificationSummary {
  return {
    top1: t.top1 / Math.max(1, t.count),
    top5: t.top5 / Math.max(1, t.count),
    loss: t.lossSum / Math.max(1, t.count),
    count: t.count,
    perClass: t.confusion.map((row, i) => {
      const n = row.reduce((a, b) => a + b, 0);
      return { name: classNames[i] ?? String(i), accuracy: n ? row[i]! / n : 0, count: n };
    }),
    confusion: t.confusion,
  };
}

export { softmaxRows } from '../nn/host_math.js';
