/** Classification metrics of an inference executable over a loader (the trainer's per-epoch eval and `tessera eval`). */
import type { BatchSource } from '../data/loader/batch_source.js';
import type { Executable } from '../runtime/compile.js';
import { crossEntropySum } from '../nn/host_math.js';
import { emptyTally, summarize, tallyBatch, type ClassificationSummary } from './metrics.js';

/** Evaluates `exe` (params as inputs; `weights` overrides them, e.g. with the EMA) on a loader. */
export async function evaluate(exe: Executable, loader: BatchSource, classNames: readonly string[], weights?: Map<string, Float32Array>): Promise<ClassificationSummary> {
  return (await evaluateWithLogits(exe, loader, classNames, weights, false)).summary;
}

/** `evaluate`, also keeping every image's logits and label (for the metrics of src/metrics, temperature fitting). */
export async function evaluateWithLogits(exe: Executable, loader: BatchSource, classNames: readonly string[], weights?: Map<string, Float32Array>, keep = true): Promise<{ summary: ClassificationSummary; logits: Float32Array; labels: Int32Array }> {
  const tally = emptyTally(classNames.length);
  const logitParts: Float32Array[] = [], labelParts: Int32Array[] = [];
  const overrides = weights ? Object.fromEntries(weights) : {};
  for (let i = 0; i < loader.numBatches; i++) {
    const b = await loader.batch(0, i);
    // an image batch whose files were all unreadable
    if (b.size === 0) continue;
    const logits = (await exe.run({ ...overrides, x: b.x })).logits!.data as Float32Array;
    tallyBatch(tally, logits, b.labels, crossEntropySum(logits, b.labels, classNames.length));
    if (keep) {
      logitParts.push(logits.slice());
      labelParts.push(Int32Array.from(b.labels));
    }
    loader.release?.(b);
  }
  return { summary: summarize(tally, classNames), logits: concat(logitParts, Float32Array), labels: concat(labelParts, Int32Array) };
}

function concat<T extends Float32Array | Int32Array>(parts: T[], Type: { new (n: number): T }): T {
  const out = new Type(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p as never, o);
    o += p.length;
  }
  return out;
}
