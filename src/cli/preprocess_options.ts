/** The checkpoint and preprocessing flags shared by eval and predict (timm validate.py's names). */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadCheckpoint, type CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { VisionTransformer } from '../models/vit.js';
import type { EvalTransform, Interpolation } from '../data/image/image.js';
import { positiveInt } from './parse.js';
import type { Executable } from '../runtime/compile.js';
import { isOnnxPath, loadOnnxModel } from '../runtime/onnx_model.js';
import { evalTransformOf } from '../export/metadata.js';
import { compileEval } from '../train/step.js';

export interface PreprocessFlags {
  checkpoint: string;
  model?: string;
  imgSize?: number;
  mean?: number[];
  std?: number[];
  cropPct?: number;
  interpolation?: Interpolation;
}

const numberList = (flag: string) => (v: string): number[] => {
  const parts = v.split(/[ ,]+/).filter(Boolean).map(Number);
  if (!parts.length || parts.some((n) => !Number.isFinite(n))) throw new InvalidArgumentError(`${flag} must be numbers separated by commas, got "${v}"`);
  return parts;
};

const cropPct = (v: string): number => {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--crop-pct must be in (0, 1], got "${v}"`);
  return n;
};

export function addPreprocessOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--checkpoint <file>', 'a checkpoint (tessera/timm .safetensors, .pth, a Hugging Face directory) or an exported .onnx file')
    .option('--model <name>', 'architecture of a checkpoint without tessera metadata (a plain timm safetensors file)')
    .option('--img-size <n>', 'input size override (square)', positiveInt('--img-size'))
    .option('--mean <list>', 'normalisation mean override, e.g. 0.485,0.456,0.406', numberList('--mean'))
    .option('--std <list>', 'normalisation std override, e.g. 0.229,0.224,0.225', numberList('--std'))
    .option('--crop-pct <f>', 'eval resize is size / crop-pct before the centre crop', cropPct)
    .addOption(new Option('--interpolation <kind>', 'resize interpolation').choices(['bilinear', 'bicubic']));
}

export interface LoadedForInference {
  model: VisionTransformer;
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
  const exe = await compileEval(model, { threads });
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
