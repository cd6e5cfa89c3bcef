/**
 * What an exported .onnx file carries in its `metadata_props`, so the file alone is enough to
 * serve: labels, preprocessing (mean/std, input size, interpolation, crop_pct), the model name and
 * config, how the input is laid out, and whether the weights are quantised. Values are strings
 * (ONNX's rule); lists and objects are JSON.
 */
import type { CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { EvalTransform, Interpolation } from '../data/image/image.js';
import type { VitConfig } from '../models/vit.js';

/**
 * 'float32_nchw': images [B, C, H, W], already normalised with mean/std (what the trainer feeds).
 * 'uint8_nhwc': raw pixels [B, H, W, C] in 0..255; the graph casts, scales and normalises.
 */
export type InputFormat = 'float32_nchw' | 'uint8_nhwc';
export type Quantization = 'none' | 'int8_dynamic';

/** A checkpoint's identity and preprocessing, plus how the exported graph takes its input. */
export interface OnnxModelMeta extends Pick<CheckpointMeta, 'model' | 'classNames' | 'mean' | 'std' | 'inputSize' | 'interpolation' | 'cropPct'> {
  inputFormat: InputFormat;
  quantization: Quantization;
  /** The architecture, when the exporter knew it (tessera always writes it). */
  config?: VitConfig;
}

/** The optional second output of an exported model (`export --attention-map`): float32[batch, patches]. */
export const ATTENTION_MAP_NAME = 'attention_map';

export class OnnxMetadataError extends Error {
  override name = 'OnnxMetadataError';
}

/** metadata_props keys; `labels`, `mean`, `std`, `input_size` hold JSON arrays. */
export const METADATA_KEYS = {
  model: 'model_name',
  classNames: 'labels',
  mean: 'mean',
  std: 'std',
  inputSize: 'input_size',
  interpolation: 'interpolation',
  cropPct: 'crop_pct',
  inputFormat: 'input_format',
  quantization: 'quantization',
  config: 'tessera_vit_config',
} as const satisfies Record<keyof OnnxModelMeta, string>;

export function metaFromCheckpoint(meta: CheckpointMeta, inputFormat: InputFormat = 'float32_nchw'): OnnxModelMeta {
  return {
    model: meta.model,
    classNames: [...meta.classNames],
    mean: [...meta.mean],
    std: [...meta.std],
    inputSize: [...meta.inputSize],
    interpolation: meta.interpolation,
    cropPct: meta.cropPct,
    inputFormat,
    quantization: 'none',
    config: meta.config,
  };
}

export function encodeMetadata(m: OnnxModelMeta): Record<string, string> {
  const k = METADATA_KEYS;
  return {
    [k.model]: m.model,
    [k.classNames]: JSON.stringify(m.classNames),
    [k.mean]: JSON.stringify(m.mean),
    [k.std]: JSON.stringify(m.std),
    [k.inputSize]: JSON.stringify(m.inputSize),
    [k.interpolation]: m.interpolation,
    [k.cropPct]: String(m.cropPct),
    [k.inputFormat]: m.inputFormat,
    [k.quantization]: m.quantization,
    ...(m.config ? { [k.config]: JSON.stringify(m.config) } : {}),
  };
}

/** Reads and checks tessera's metadata; `source` names the file in error messages. */
export function decodeMetadata(props: readonly { key?: string | null; value?: string | null }[], source: string): OnnxModelMeta {
  const map = new Map(props.map((p) => [p.key ?? '', p.value ?? '']));
  const bad = (key: string, expected: string): never => {
    const v = map.get(key);
    throw new OnnxMetadataError(v === undefined
      ? `${source} has no "${key}" in its metadata_props; export it with \`tessera export\`, which writes ${Object.values(METADATA_KEYS).slice(0, -1).join(', ')}`
      : `${source}: metadata "${key}" is ${JSON.stringify(v.slice(0, 80))}, expected ${expected}`);
  };
  const json = (key: string, expected: string, ok: (v: unknown) => boolean): unknown => {
    const raw = map.get(key);
    let v: unknown;
    try {
      v = raw === undefined ? undefined : JSON.parse(raw);
    } catch {
      return bad(key, expected);
    }
    return ok(v) ? v : bad(key, expected);
  };
  const numbers = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((n) => typeof n === 'number' && Number.isFinite(n));
  const k = METADATA_KEYS;
  const model = map.get(k.model) || bad(k.model, 'a model name');
  const classNames = json(k.classNames, 'a JSON array of label strings', (v) => Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string')) as string[];
  const mean = json(k.mean, 'a JSON array of numbers', numbers) as number[];
  const std = json(k.std, 'a JSON array of positive numbers', (v) => numbers(v) && (v as number[]).every((n) => n > 0)) as number[];
  const inputSize = json(k.inputSize, 'a JSON array [C, H, W] of positive integers',
    (v) => numbers(v) && (v as number[]).length === 3 && (v as number[]).every((n) => Number.isInteger(n) && n > 0)) as [number, number, number];
  const interpolation = map.get(k.interpolation);
  if (interpolation !== 'bilinear' && interpolation !== 'bicubic') bad(k.interpolation, 'bilinear or bicubic');
  const cropPct = Number(map.get(k.cropPct));
  if (!(cropPct > 0 && cropPct <= 1)) bad(k.cropPct, 'a number in (0, 1]');
  const inputFormat = map.get(k.inputFormat) ?? 'float32_nchw';
  if (inputFormat !== 'float32_nchw' && inputFormat !== 'uint8_nhwc') bad(k.inputFormat, 'float32_nchw or uint8_nhwc');
  const quantization = map.get(k.quantization) ?? 'none';
  if (quantization !== 'none' && quantization !== 'int8_dynamic') bad(k.quantization, 'none or int8_dynamic');
  const config = map.has(k.config) ? json(k.config, 'a JSON object', (v) => typeof v === 'object' && v !== null) as VitConfig : undefined;
  for (const [name, list] of [['mean', mean], ['std', std]] as const) {
    if (list.length !== 1 && list.length !== inputSize[0]) bad(name, `${inputSize[0]} value(s), one per channel`);
  }
  return {
    model, classNames, mean, std, inputSize, cropPct,
    interpolation: interpolation as Interpolation,
    inputFormat: inputFormat as InputFormat,
    quantization: quantization as Quantization,
    ...(config ? { config } : {}),
  };
}

/** The eval transform (resize, centre crop, normalise) an exported model expects of an image file. */
export function evalTransformOf(m: OnnxModelMeta): EvalTransform {
  return { inputSize: m.inputSize, cropPct: m.cropPct, interpolation: m.interpolation, mean: m.mean, std: m.std };
}
