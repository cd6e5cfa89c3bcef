/**
 * What an exported .onnx file carries in its `metadata_props`, so the file alone is enough to
 * serve: labels, preprocessing (mean/std, input size, interpolation, crop_pct), the model's name,
 * family and config, how the input is laid out, and whether the weights are quantised. Values are
 * strings (ONNX's rule); lists and objects are JSON. It lives beside the loader that reads it
 * (`onnx_model.ts`); `src/export/` writes it.
 */

/**
 * 'float32_nchw': images [B, C, H, W], already normalised with mean/std (what the trainer feeds).
 * 'uint8_nhwc': raw pixels [B, H, W, C] in 0..255; the graph casts, scales and normalises.
 */
export type InputFormat = 'float32_nchw' | 'uint8_nhwc';
export type Quantization = 'none' | 'int8_dynamic' | 'int8_static';

/** A checkpoint's identity and preprocessing, plus how the exported graph takes its input. */
export interface OnnxModelMeta {
  model: string;
  classNames: string[];
  mean: number[];
  std: number[];
  /** [C, H, W] */
  inputSize: [number, number, number];
  interpolation: 'bilinear' | 'bicubic';
  cropPct: number;
  inputFormat: InputFormat;
  quantization: Quantization;
  /** The model family, when the exporter knew it (tessera always writes it; older files hold ViTs). */
  family?: string;
  /** The family's config, when the exporter knew it (tessera always writes it). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  config?: Record<string, any>;
  /** The checkpoint's temperature scaling, already applied inside the graph (its logits are divided by it); absent: none. */
  temperature?: number;
}

/** The optional second output of an exported model (`export --attention-map`): float32[batch, patches]. */
export const ATTENTION_MAP_NAME = 'attention_map';

export class OnnxMetadataError extends Error {
  override name = 'OnnxMetadataError';
}

/** metadata_props keys; `labels`, `mean`, `std`, `input_size` hold JSON arrays. The config's key is `configKey(family)`. */
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
  family: 'model_family',
  temperature: 'temperature',
} as const satisfies Record<Exclude<keyof OnnxModelMeta, 'config'>, string>;

/** The keys every tessera export has (the others are optional). */
const REQUIRED_KEYS = ['model', 'classNames', 'mean', 'std', 'inputSize', 'interpolation', 'cropPct', 'inputFormat', 'quantization'] as const;

/**
 * The config sits under a key naming its family, `tessera_vit_config` for a ViT: the key ViT
 * exports have carried from the start, so files written before there were families read the same.
 */
export const configKey = (family: string): string => `tessera_${family}_config`;

/** Files without `model_family` come from before there were families: they hold ViTs. */
const LEGACY_FAMILY = 'vit';

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
    ...(m.family ? { [k.family]: m.family } : {}),
    ...(m.config ? { [configKey(m.family ?? LEGACY_FAMILY)]: JSON.stringify(m.config) } : {}),
    ...(m.temperature !== undefined ? { [k.temperature]: String(m.temperature) } : {}),
  };
}

/** Reads and checks tessera's metadata; `source` names the file in error messages. */
export function decodeMetadata(props: readonly { key?: string | null; value?: string | null }[], source: string): OnnxModelMeta {
  const map = new Map(props.map((p) => [p.key ?? '', p.value ?? '']));
  const bad = (key: string, expected: string): never => {
    const v = map.get(key);
    throw new OnnxMetadataError(v === undefined
      ? `${source} has no "${key}" in its metadata_props; export it with \`tessera export\`, which writes ${REQUIRED_KEYS.map((r) => METADATA_KEYS[r]).join(', ')}`
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
  if (quantization !== 'none' && quantization !== 'int8_dynamic' && quantization !== 'int8_static') bad(k.quantization, 'none, int8_dynamic or int8_static');
  const family = map.get(k.family);
  if (family !== undefined && !/^\w+$/.test(family)) bad(k.family, 'a model family name (letters, digits, _)');
  const cfgKey = configKey(family ?? LEGACY_FAMILY);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const config = map.has(cfgKey) ? json(cfgKey, 'a JSON object', (v) => typeof v === 'object' && v !== null && !Array.isArray(v)) as Record<string, any> : undefined;
  const rawTemperature = map.get(k.temperature);
  const temperature = rawTemperature === undefined ? undefined : Number(rawTemperature);
  if (temperature !== undefined && !(Number.isFinite(temperature) && temperature > 0)) bad(k.temperature, 'a finite positive number');
  for (const [name, list] of [['mean', mean], ['std', std]] as const) {
    if (list.length !== 1 && list.length !== inputSize[0]) bad(name, `${inputSize[0]} value(s), one per channel`);
  }
  return {
    model, classNames, mean, std, inputSize, cropPct,
    interpolation: interpolation as OnnxModelMeta['interpolation'],
    inputFormat: inputFormat as InputFormat,
    quantization: quantization as Quantization,
    ...(config ? { family: family ?? LEGACY_FAMILY, config } : family ? { family } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
  };
}
