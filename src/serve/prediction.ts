/** Turning a row of logits into the JSON a client gets: top-k labels with probabilities. */
import type { OnnxModelMeta } from '../export/metadata.js';

export interface LabelScore { label: string; index: number; probability: number }
export interface Prediction { top: LabelScore[]; logits?: number[] }

export function topK(logits: Float32Array, classNames: readonly string[], k: number): LabelScore[] {
  const m = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v, index) => ({ label: classNames[index] ?? String(index), index, probability: v / z }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, k);
}

export function prediction(logits: Float32Array, meta: OnnxModelMeta, k: number, withLogits: boolean): Prediction {
  return { top: topK(logits, meta.classNames, k), ...(withLogits ? { logits: Array.from(logits) } : {}) };
}

/** Public model description for GET /v1/model and the web page. */
export function modelInfo(meta: OnnxModelMeta, bytes: number, batching: { maxBatch: number; maxWaitMs: number }) {
  return {
    model: meta.model,
    labels: meta.classNames,
    input_size: meta.inputSize,
    mean: meta.mean,
    std: meta.std,
    interpolation: meta.interpolation,
    crop_pct: meta.cropPct,
    input_format: meta.inputFormat,
    quantization: meta.quantization,
    onnx: { url: '/v1/model.onnx', bytes },
    batching: { max_batch: batching.maxBatch, max_wait_ms: batching.maxWaitMs },
  };
}
