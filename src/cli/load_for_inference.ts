/**
 * Loading a model for eval, predict, explain, attack, export and convert: a checkpoint or an
 * exported .onnx file, with the shared preprocessing overrides (common_options.ts) applied.
 * eval and predict run an .onnx file as it is; the commands that need more than its forward pass
 * (gradients, another export or layout) rebuild the model from the file's metadata and weights.
 */
import { readFileSync } from 'node:fs';
import { CheckpointError, loadCheckpoint, modelFor, type CheckpointMeta, type HeldOutSplit, type LoadOptions } from '../checkpoint/checkpoint.js';
import type { ImageModel } from '../models/model.js';
import { compileInference, frozenWeights } from '../models/executables.js';
import type { EvalTransform } from '../data/image/image.js';
import { decodeModel, onnx, type TensorProto } from '../onnx/proto.js';
import type { Executable } from '../runtime/compile.js';
import { inspectOnnxModel, isOnnxPath, loadOnnxModel } from '../runtime/onnx_model.js';
import { evalTransformOf } from '../export/metadata.js';
import type { PreprocessFlags } from './common_options.js';
import { ModelKwargsError, withModelKwargs } from '../models/model_kwargs.js';
import { UsageError } from './output.js';

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
  /** The hold-out training drew from images on disk (checkpoints record it; .onnx files do not). */
  heldOut?: HeldOutSplit;
  /** The model's temperature scaling (checkpoint or .onnx metadata); absent when it has none. */
  temperature?: number;
  close(): Promise<void>;
}

export interface InferenceOpenOptions {
  /**
   * Logits as the network gives them, before the temperature (eval reports calibration before
   * and after it). Default: divided by the temperature, as export and serve give them.
   */
  rawLogits?: boolean;
  /**
   * The weights go into the graph (frozenWeights), so ORT packs each matmul weight once when the
   * session opens instead of on every run: for eval, which runs a whole data set; predict feeds
   * them, as its first answer would otherwise wait for the packing (seconds for a ViT-B).
   */
  frozen?: boolean;
}

export async function openForInference(f: PreprocessFlags, threads?: number, opts: InferenceOpenOptions = {}): Promise<InferenceModel> {
  if (isOnnxPath(f.checkpoint)) {
    if (f.model) throw new Error(`--model is for checkpoints without metadata; ${f.checkpoint} carries its own`);
    if (f.modelKwargs) throw new UsageError(`--model-kwargs apply to checkpoints; ${f.checkpoint} is an exported graph (export the checkpoint with --model-kwargs instead)`);
    const m = await loadOnnxModel(f.checkpoint, { threads });
    const base = evalTransformOf(m.meta);
    const t = m.meta.temperature;
    // the file's graph divides by T: multiply back for the raw logits
    const exe = t !== undefined && opts.rawLogits ? scaleLogits(m.executable, t) : m.executable;
    return { exe, classNames: m.meta.classNames, transform: withOverrides(f, base), ...(t !== undefined ? { temperature: t } : {}), close: () => m.dispose() };
  }
  const { model, meta, transform } = loadForInference(f);
  const t = meta.temperature;
  const exe = await compileInference(model, { threads, ...(opts.frozen ? { params: frozenWeights(model) } : {}) }, opts.rawLogits ? undefined : t);
  return {
    exe, classNames: meta.classNames, transform, ...(meta.heldOut ? { heldOut: meta.heldOut } : {}), ...(t !== undefined ? { temperature: t } : {}),
    close: () => exe.dispose(),
  };
}

/** An executable whose `logits` output is multiplied by `factor`. */
function scaleLogits(exe: Executable, factor: number): Executable {
  return {
    onnx: exe.onnx, inputs: exe.inputs, outputs: exe.outputs,
    run: async (feeds) => {
      const out = await exe.run(feeds);
      const logits = out.logits!;
      return { ...out, logits: { ...logits, data: (logits.data as Float32Array).map((v) => v * factor) } };
    },
    endProfiling: () => exe.endProfiling(),
    dispose: () => exe.dispose(),
  };
}

export function withOverrides(f: PreprocessFlags, t: EvalTransform): EvalTransform {
  const [c, h, w] = t.inputSize;
  if (f.imgSize !== undefined && f.imgSize !== h) throw new Error(`--img-size ${f.imgSize} differs from the model's ${h}×${w}`);
  for (const [flag, list] of [['--mean', f.mean], ['--std', f.std]] as const) {
    if (list && list.length !== c && list.length !== 1) throw new Error(`${flag} needs ${c} value${c > 1 ? 's' : ''} (one per channel), got ${list.length}`);
  }
  return { ...t, cropPct: f.cropPct ?? t.cropPct, interpolation: f.interpolation ?? t.interpolation, mean: f.mean ?? t.mean, std: f.std ?? t.std };
}

/** A checkpoint, or the model an exported fp32 .onnx file holds (see modelFromOnnx); `command` names what needs it in errors. */
export function loadModelFile(path: string, opts: LoadOptions, command: string): { model: ImageModel; meta: CheckpointMeta } {
  if (!isOnnxPath(path)) return loadCheckpoint(path, opts);
  if (opts.model) throw new CheckpointError(`--model is for checkpoints without metadata; ${path} carries its own`);
  return modelFromOnnx(path, command);
}

/**
 * The model inside an .onnx file written by `tessera export`: built from the family and config in
 * its metadata, its parameters read from the initializers, which keep their timm names. An int8
 * export has lost the float weights, and a file from elsewhere has no config: both are refused.
 */
export function modelFromOnnx(path: string, command: string): { model: ImageModel; meta: CheckpointMeta } {
  const askForCheckpoint = 'give the checkpoint it was exported from (.safetensors)';
  const { meta: m, bytes } = inspectOnnxModel(path);
  if (m.quantization !== 'none') throw new CheckpointError(`${path} is int8-quantised (export --quantize int8): ${command} needs the float weights; ${askForCheckpoint}, or an export without --quantize`);
  if (!m.family || !m.config) throw new CheckpointError(`${path} has no model config in its metadata: ${command} needs the model itself, not only its forward pass; ${askForCheckpoint}`);
  const meta: CheckpointMeta = {
    model: m.model, family: m.family, config: m.config, classNames: m.classNames, mean: m.mean, std: m.std,
    inputSize: m.inputSize, interpolation: m.interpolation, cropPct: m.cropPct,
    // the graph divided by it; a model rebuilt from the weights must too
    ...(m.temperature !== undefined ? { temperature: m.temperature } : {}),
  };
  const model = modelFor(meta, path);
  const initializers = new Map((decodeModel(bytes).graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  const absent: string[] = [];
  for (const [key, p] of model.namedState()) {
    const t = initializers.get(key);
    const data = t && sameDims(t, p.shape) ? floatsOf(t) : undefined;
    if (data?.length === p.data.length) p.data.set(data);
    else absent.push(key);
  }
  if (absent.length) {
    throw new CheckpointError(`${path}: ${absent.length} of its ${m.model}'s tensors are not float32 initializers of the file (${absent.slice(0, 3).join(', ')}${absent.length > 3 ? ', …' : ''}); ${askForCheckpoint}`);
  }
  return { model, meta: { ...meta, config: { ...model.config } } };
}

const sameDims = (t: TensorProto, shape: readonly number[]) => (t.dims ?? []).length === shape.length && (t.dims ?? []).every((d, i) => Number(d) === shape[i]);

function floatsOf(t: TensorProto): Float32Array | undefined {
  if (t.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
  // raw_data may sit at any offset of the file: copy before viewing it as floats
  if (t.rawData?.length) return new Float32Array(new Uint8Array(t.rawData).buffer);
  return Float32Array.from(t.floatData ?? []);
}

/** `--model-kwargs` on a loaded model (token merging on a checkpoint trained without it), as a usage error when it cannot apply. */
export function applyModelKwargs(loaded: { model: ImageModel; meta: CheckpointMeta }, kwargs: Record<string, unknown> | undefined): { model: ImageModel; meta: CheckpointMeta } {
  try {
    return withModelKwargs(loaded.model, loaded.meta, kwargs);
  } catch (e) {
    throw e instanceof ModelKwargsError ? new UsageError(e.message) : e;
  }
}

export function loadForInference(f: PreprocessFlags, command = 'this command'): LoadedForInference {
  const { model, meta } = applyModelKwargs(loadModelFile(f.checkpoint, { model: f.model }, command), f.modelKwargs);
  const [c, h, w] = meta.inputSize;
  if (f.imgSize !== undefined && f.imgSize !== h) {
    throw new Error(`--img-size ${f.imgSize} differs from the checkpoint's ${h}×${w}; resampling position embeddings for a new size is part of fine-tuning, not evaluation`);
  }
  // the size was checked above with the checkpoint's own message; withOverrides checks mean/std
  const transform = withOverrides(f, { inputSize: [c, h, w], cropPct: meta.cropPct, interpolation: meta.interpolation, mean: meta.mean, std: meta.std });
  return { model, meta, transform };
}
