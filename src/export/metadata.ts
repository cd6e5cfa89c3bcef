/**
 * The metadata an export writes, taken from its checkpoint. The format itself (keys, encoding,
 * checks) lives beside the loader that reads it, `src/runtime/onnx_metadata.ts`, and is
 * re-exported here.
 */
import type { CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { EvalTransform } from '../data/image/image.js';
import { familyOf } from '../models/registry.js';
import type { InputFormat, OnnxModelMeta } from '../runtime/onnx_metadata.js';

export {
  ATTENTION_MAP_NAME, METADATA_KEYS, OnnxMetadataError, configKey, decodeMetadata, encodeMetadata,
  type InputFormat, type OnnxModelMeta, type Quantization,
} from '../runtime/onnx_metadata.js';

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
    family: meta.family ?? familyOf(meta.model),
    config: meta.config,
    ...(meta.temperature !== undefined && meta.temperature !== 1 ? { temperature: meta.temperature } : {}),
  };
}

/** The eval transform (resize, centre crop, normalise) an exported model expects of an image file. */
export function evalTransformOf(m: OnnxModelMeta): EvalTransform {
  return { inputSize: m.inputSize, cropPct: m.cropPct, interpolation: m.interpolation, mean: m.mean, std: m.std };
}
