/** Turning a row of logits into the JSON a client gets: top-k labels with probabilities. */
import type { OnnxModelMeta } from '../export/metadata.js';
import { softmaxRows } from '../nn/host_math.js';

export interface LabelScore { label: string; index: number; probability: number }
/** The attention rollout over the patch grid (row-major [gh, gw]), min-max scaled to [0, 1]. */
export interface AttentionOverlay { grid: [number, number]; values: number[] }
export interface Prediction { top: LabelScore[]; logits?: number[]; attention?: AttentionOverlay }

export function topK(logits: Float32Array, classNames: readonly string[], k: number): LabelScore[] {
  return Array.from(softmaxRows(logits, logits.length), (probability, index) => ({ label: classNames[index] ?? String(index), index, probability }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, k);
}

export function prediction(logits: Float32Array, meta: OnnxModelMeta, k: number, withLogits: boolean, attention?: Float32Array): Prediction {
  return {
    top: topK(logits, meta.classNames, k),
    ...(withLogits ? { logits: Array.from(logits) } : {}),
    ...(attention ? { attention: attentionOverlay(attention, attentionGrid(meta, attention.length)) } : {}),
  };
}

/**
 * The patch grid [gh, gw] of an `attention_map` with n values: from the exported config when it
 * has one (imgSize / patchSize per side), otherwise the square root for a square grid.
 */
export function attentionGrid(meta: OnnxModelMeta, n: number): [number, number] {
  const c = meta.config;
  if (c && Math.floor(c.imgSize / c.patchSize) ** 2 === n) return [Math.floor(c.imgSize / c.patchSize), Math.floor(c.imgSize / c.patchSize)];
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) throw new RangeError(`${meta.model}: an attention map of ${n} values is no square patch grid, and the metadata's config does not give one`);
  return [side, side];
}

/** Min-max scaled to [0, 1] and rounded to 4 decimals (a constant map becomes zeros). */
export function attentionOverlay(map: Float32Array, grid: [number, number]): AttentionOverlay {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const range = hi - lo;
  return { grid, values: Array.from(map, (v) => (range > 0 ? Math.round(((v - lo) / range) * 1e4) / 1e4 : 0)) };
}

/** Public model description for GET /v1/model and the web page. */
export function modelInfo(meta: OnnxModelMeta, bytes: number, batching: { maxBatch: number; maxWaitMs: number }, attentionSize = 0) {
  return {
    model: meta.model,
    labels: meta.classNames,
    input_size: meta.inputSize,
    mean: meta.mean,
    std: meta.std,
    interpolation: meta.interpolation,
    crop_pct: meta.cropPct,
    input_format: meta.inputFormat,
    // the patch grid of the model's attention_map output (null: the file has none)
    attention_map: attentionSize ? { grid: attentionGrid(meta, attentionSize) } : null,
    quantization: meta.quantization,
    onnx: { url: '/v1/model.onnx', bytes },
    batching: { max_batch: batching.maxBatch, max_wait_ms: batching.maxWaitMs },
  };
}
