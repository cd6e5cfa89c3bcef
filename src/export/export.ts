/**
 * ONNX export: the model's forward pass traced once more with its parameters baked in as
 * initializers and a symbolic batch axis, plus the metadata that makes the file self-contained.
 * It is the same graph compile() runs, not a separate converter.
 */
import type { CheckpointMeta } from '../checkpoint/checkpoint.js';
import type { ImageModel } from '../models/model.js';
import { requireTokenGrid } from '../explain/probe.js';
import { DEFAULT_OPSET, emitModel } from '../onnx/emit.js';
import { encodeModel, type ModelProto } from '../onnx/proto.js';
import { div } from '../ops/elementwise.js';
import { trace, type InputSpec } from '../runtime/compile.js';
import { ATTENTION_MAP_NAME, attentionMapGraph } from './attention_map.js';
import { encodeMetadata, metaFromCheckpoint, type OnnxModelMeta } from './metadata.js';
import { normalizePixels } from './preprocess.js';
import { quantizeDynamicInt8, type QuantizeOptions, type QuantizeReport } from './quantize.js';
import { quantizeStaticInt8, weightMatmulInputs } from './quantize_static.js';
import { fuseAttention } from './fuse_attention.js';
import { activationRanges, type CalibrationImages } from './calibration_ranges.js';
import type { SessionOptions } from '../runtime/session.js';

export interface ExportOptions {
  /** ONNX opset, 17 (default) to 21. */
  opset?: number;
  /** Take raw pixels uint8 [B, H, W, C] and normalise inside the graph. */
  preprocess?: boolean;
  /** Dynamic int8 quantisation of the weight matmuls. */
  quantize?: 'int8';
  quantizeOptions?: QuantizeOptions;
  /** Add a second output, `attention_map` float32[batch, patches]: the attention rollout's patch row (models with a token grid). */
  attentionMap?: boolean;
}

export interface ExportedModel {
  bytes: Uint8Array;
  model: ModelProto;
  meta: OnnxModelMeta;
  inputName: string;
  outputName: string;
  /** Set when the file has the `attention_map` output. */
  attentionMapName?: string;
  opset: number;
  /** Set for int8 exports. */
  quantization?: QuantizeReport;
}

/** Input names of exported models: normalised floats, or raw pixels with --preprocess. */
export const INPUT_NAME = { float32_nchw: 'input', uint8_nhwc: 'image' } as const;
export const OUTPUT_NAME = 'logits';

export function exportModel(model: ImageModel, ckpt: CheckpointMeta, opts: ExportOptions = {}): ExportedModel {
  const opset = opts.opset ?? DEFAULT_OPSET;
  const [c, h, w] = model.inputShape;
  // checked before tracing: one line naming the model, not a failure inside the graph
  const grid = opts.attentionMap ? requireTokenGrid(model, 'the attention_map output (--attention-map)', { name: ckpt.model }) : undefined;
  const meta = metaFromCheckpoint(ckpt, opts.preprocess ? 'uint8_nhwc' : 'float32_nchw');
  const inputName = INPUT_NAME[meta.inputFormat];
  const spec: InputSpec = opts.preprocess
    ? { name: inputName, shape: ['batch', h, w, c], dtype: 'uint8' }
    : { name: inputName, shape: ['batch', c, h, w] };
  const traced = trace((x) => {
    const images = opts.preprocess ? normalizePixels(x, meta.mean, meta.std) : x; // [B, C, H, W]
    const out = model.forward(images, { attention: opts.attentionMap });
    // a calibrated checkpoint: the file's logits are already divided by its temperature
    const scaled = ckpt.temperature !== undefined && ckpt.temperature !== 1;
    return {
      [OUTPUT_NAME]: scaled ? div(out.logits, ckpt.temperature!) : out.logits, // [B, classes]
      ...(opts.attentionMap ? { [ATTENTION_MAP_NAME]: attentionMapGraph(model, out.attentions!, ckpt.model) } : {}), // [B, N]
    };
  }, [spec]);
  const emitted = emitModel(traced.graph, traced.outputs, { opset, params: 'initializers', graphName: meta.model, metadata: encodeMetadata(meta) });
  const proto = emitted.model;
  proto.docString = `${meta.model} exported by tessera: ${inputName} ${meta.inputFormat === 'uint8_nhwc' ? `uint8[batch, ${h}, ${w}, ${c}] raw pixels` : `float32[batch, ${c}, ${h}, ${w}] normalised with mean ${JSON.stringify(meta.mean)}, std ${JSON.stringify(meta.std)}`} → ${OUTPUT_NAME} float32[batch, ${meta.classNames.length}]`
    + (opts.attentionMap ? `, ${ATTENTION_MAP_NAME} float32[batch, ${grid!.grid[0] * grid!.grid[1]}] (attention rollout over the patches)` : '');
  const fp32: ExportedModel = {
    bytes: encodeModel(proto), model: proto, meta, inputName, outputName: OUTPUT_NAME, opset,
    ...(opts.attentionMap ? { attentionMapName: ATTENTION_MAP_NAME } : {}),
  };
  return opts.quantize ? quantizeExport(fp32, opts.quantizeOptions) : fp32;
}

/** The int8 version of an fp32 export (same inputs, outputs and metadata, quantization marked). */
export function quantizeExport(fp32: ExportedModel, opts: QuantizeOptions = {}): ExportedModel {
  const q = quantizeDynamicInt8(fp32.model, opts);
  const meta: OnnxModelMeta = { ...fp32.meta, quantization: 'int8_dynamic' };
  q.model.metadataProps = Object.entries(encodeMetadata(meta)).map(([key, value]) => ({ key, value }));
  return { ...fp32, bytes: encodeModel(q.model), model: q.model, meta, quantization: q.report };
}

/**
 * The static (QDQ) int8 version of an fp32 export: activation ranges measured on `images`
 * (uint8 NHWC pixels of the model's input size), then fixed scales in the file.
 */
export async function quantizeStaticExport(fp32: ExportedModel, images: CalibrationImages, opts: QuantizeOptions & { session?: SessionOptions } = {}): Promise<ExportedModel> {
  const activations = weightMatmulInputs(fp32.model, opts.exclude).map((t) => t.activation);
  const ranges = await activationRanges(fp32.model, fp32.meta, activations, images, { session: opts.session });
  const q = quantizeStaticInt8(fp32.model, ranges, opts);
  const meta: OnnxModelMeta = { ...fp32.meta, quantization: 'int8_static' };
  q.model.metadataProps = Object.entries(encodeMetadata(meta)).map(([key, value]) => ({ key, value }));
  return { ...fp32, bytes: encodeModel(q.model), model: q.model, meta, quantization: q.report };
}

/** The export with its attention cores as ORT's fused com.microsoft.MultiHeadAttention (fuse_attention.ts); `fused` is how many. */
export function fuseAttentionExport(m: ExportedModel): ExportedModel & { fusedAttention: number } {
  const f = fuseAttention(m.model);
  return { ...m, bytes: encodeModel(f.model), model: f.model, fusedAttention: f.fused };
}
