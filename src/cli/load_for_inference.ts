/** Loading a model for eval, predict, explain and attack: a checkpoint or an exported .onnx file, with the shared preprocessing overrides (common_options.ts) applied. */
import { loadCheckpoint, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { ImageModel } from '../models/model.js';
import { compileInference } from '../models/executables.js';
import type { EvalTransform } from '../data/image/image.js';
import type { Executable } from '../runtime/compile.js';
import { isOnnxPath, loadOnnxModel } from '../runtime/onnx_model.js';
import { evalTransformOf } from '../export/metadata.js';
import type { PreprocessFlags } from './common_options.js';

export interface LoadedForInference {
  model: ImageModel;
  meta: CheckpointMeta;
  transform: EvalTransform;
}

/** A model ready for eval/predict: a tessera checkpoint (compiled here) or an exported .onnx file. */
export interface InferenceModel {
  exe: Executable;
  classNames: string[];
  transform: EvalTransform;
  close(): Promise<void>;
}

export async function openForInference(f: PreprocessFlags, threads?: number): Promise<InferenceModel> {
  if (isOnnxPath(f.checkpoint)) {
    if (f.model) throw new Error(`--model is for checkpoints without metadata; ${f.checkpoint} carries its own`);
    const m = await loadOnnxModel(f.checkpoint, { threads });
    const base = evalTransformOf(m.meta);
    return { exe: m.executable, classNames: m.meta.classNames, transform: withOverrides(f, base), close: () => m.dispose() };
  }
  const { model, meta, transform } = loadForInference(f);
  const exe = await compileInference(model, { threads });
  return { exe, classNames: meta.classNames, transform, close: () => exe.dispose() };
}

function withOverrides(f: PreprocessFlags, t: EvalTransform): EvalTransform {
  const [c, h, w] = t.inputSize;
  if (f.imgSize !== undefined && f.imgSize !== h) throw new Error(`--img-size ${f.imgSize} differs from the model's ${h}×${w}`);
  for (const [flag, list] of [['--mean', f.mean], ['--std', f.std]] as const) {
    if (list && list.length !== c && list.length !== 1) throw new Error(`${flag} needs ${c} value${c > 1 ? 's' : ''} (one per channel), got ${list.length}`);
  }
  return { ...t, cropPct: f.cropPct ?? t.cropPct, interpolation: f.interpolation ?? t.interpolation, mean: f.mean ?? t.mean, std: f.std ?? t.std };
}

export function loadForInference(f: PreprocessFlags): LoadedForInference {
  const { model, meta } = loadCheckpoint(f.checkpoint, { model: f.model });
  const [c, h, w] = meta.inputSize;
  if (f.imgSize !== undefined && f.imgSize !== h) {
    throw new Error(`--img-size ${f.imgSize} differs from the checkpoint's ${h}×${w}; resampling position embeddings for a new size is part of fine-tuning, not evaluation`);
  }
  for (const [flag, list] of [['--mean', f.mean], ['--std', f.std]] as const) {
    if (list && list.length !== c && list.length !== 1) throw new Error(`${flag} needs ${c} value${c > 1 ? 's' : ''} (one per channel), got ${list.length}`);
  }
  return {
    model,
    meta,
    transform: {
      inputSize: [c, h, w],
      cropPct: f.cropPct ?? meta.cropPct,
      interpolation: f.interpolation ?? meta.interpolation,
      mean: f.mean ?? meta.mean,
      std: f.std ?? meta.std,
    },
  };
}
