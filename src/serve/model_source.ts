/**
 * What `serve` runs: an exported .onnx file as-is, or a checkpoint exported in memory first, so
 * that the server, `tessera export` and the browser all execute the same graph. Inference runs
 * on its own thread.
 */
import { loadCheckpoint } from '../checkpoint/checkpoint.js';
import { withModelKwargs } from '../models/model_kwargs.js';
import { exportModel } from '../export/export.js';
import { isOnnxPath } from '../runtime/onnx_model.js';
import type { SessionOptions } from '../runtime/session.js';
import { startInferenceWorker, type ServedModel } from './worker_model.js';

export interface ModelSource {
  /** a .safetensors checkpoint (or an .onnx file) */
  checkpoint?: string;
  /** an .onnx file exported by `tessera export` */
  onnx?: string;
  /** with a checkpoint: export it with preprocessing in the graph */
  preprocess?: boolean;
  /** with a checkpoint: add the attention_map output, so the web page can draw an overlay (default: when the model has a token grid) */
  attentionMap?: boolean;
  /** with a checkpoint: --model-kwargs that change no weight (token merging's tome_r) */
  modelKwargs?: Record<string, unknown>;
}

export async function loadServedModel(src: ModelSource, session: SessionOptions = {}): Promise<ServedModel> {
  if (src.checkpoint && src.onnx) throw new Error('give either --checkpoint or --model, not both');
  const path = src.onnx ?? src.checkpoint;
  if (!path) throw new Error('serve needs a model: --checkpoint FILE.safetensors or --model FILE.onnx');
  if (src.onnx && !isOnnxPath(src.onnx)) throw new Error(`--model takes an .onnx file exported by \`tessera export\`, got "${src.onnx}"`);
  if (isOnnxPath(path)) {
    if (src.modelKwargs) throw new Error('--model-kwargs apply to a --checkpoint; an .onnx file is served as it was exported');
    return startInferenceWorker(path, session);
  }
  const loaded = loadCheckpoint(path);
  const { model, meta } = withModelKwargs(loaded.model, loaded.meta, src.modelKwargs);
  const exported = exportModel(model, meta, { preprocess: src.preprocess, attentionMap: src.attentionMap ?? model.tokenGrid() !== undefined });
  return startInferenceWorker(exported.bytes, session, path);
}
