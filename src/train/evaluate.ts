/** Classification metrics of an inference executable over a loader (the trainer's per-epoch eval and `tessera eval`). */
import type { BatchSource } from '../data/loader/batch_source.js';
import type { Executable } from '../runtime/compile.js';
import { crossEntropySum } from '../nn/host_math.js';
import { emptyTally, summarize, tallyBatch, type ClassificationSummary } from './metrics.js';

/** Evaluates `exe` (params as inputs; `weights` overrides them, e.g. with the EMA) on a loader. */
export async function evaluate(exe: Executable, loader: BatchSource, classNames: readonly string[], weights?: Map<string, Float32Array>): Promise<ClassificationSummary> {
  const tally = emptyTally(classNames.length);
  const overrides = weights ? Object.fromEntries(weights) : {};
  for (let i = 0; i < loader.numBatches; i++) {
    const b = await loader.batch(0, i);
    // an image batch whose files were all unreadable
    if (b.size === 0) continue;
    const logits = (await exe.run({ ...overrides, x: b.x })).logits!.data as Float32Array;
    tallyBatch(tally, logits, b.labels, crossEntropySum(logits, b.labels, classNames.length));
    loader.release?.(b);
  }
  return summarize(tally, classNames);
}
