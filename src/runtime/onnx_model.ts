/**
 * Loading an .onnx file exported by tessera for inference: its metadata (labels, preprocessing,
 * model name) and an ORT session behind a small interface. `predict`, `eval` and `serve` use it
 * to run exported models, and `serve` also runs checkpoints through it after exporting them in
 * memory, so the server and the browser execute the same bytes.
 */
import { readFileSync } from 'node:fs';
import { BATCH } from '../ir/shape.js';
import type { HostArray } from '../ir/dtype.js';
import { decodeModel, dtypeFromCode } from '../onnx/proto.js';
import { ATTENTION_MAP_NAME, decodeMetadata, OnnxMetadataError, type OnnxModelMeta } from './onnx_metadata.js';
import { normalizePixelsOnHost, pixelsFromNormalized } from './host_pixels.js';
import type { Executable, Feed } from './compile.js';
import { openSession, type HostTensor, type SessionOptions } from './session.js';
import { quote } from '../quote.js';

/** An exported model's file, checked and described, without an ORT session. */
export interface OnnxModelFile {
  readonly meta: OnnxModelMeta;
  /** The file's bytes (the server hands them to the browser as-is). */
  readonly bytes: Uint8Array;
  readonly inputName: string;
  readonly outputName: string;
  /** True when the file has the optional second output `attention_map` [B, patches] (export --attention-map). */
  readonly attentionMap: boolean;
  /** Values per image of `attention_map` (the patches), when the file has it. */
  readonly attentionSize?: number;
}

/** Logits [B, classes] and, for files with the map, the attention rollout [B, patches]. */
export interface RunWithAttention { logits: Float32Array; attention?: Float32Array }

export interface OnnxModel extends OnnxModelFile {
  /** Images [B, C, H, W] normalised with meta.mean/std → logits [B, classes]. */
  run(x: Float32Array): Promise<Float32Array>;
  /** Raw pixels uint8 [B, H, W, C] → logits [B, classes]. */
  runPixels(pixels: Uint8Array): Promise<Float32Array>;
  /** Like run(), and also returns `attention_map` when the file has it. */
  runWithAttention(x: Float32Array): Promise<RunWithAttention>;
  /**
   * The same model as an `Executable` with input `x` (normalised [B, C, H, W]) and output
   * `logits`, for code written against compiled executables (e.g. `evaluate`).
   */
  readonly executable: Executable;
  dispose(): Promise<void>;
}

/** Reads and checks an exported model (path or bytes) without opening it; `source` names it in errors. */
export function inspectOnnxModel(file: string | Uint8Array, source = typeof file === 'string' ? file : 'the model'): OnnxModelFile {
  let bytes: Uint8Array;
  try {
    bytes = typeof file === 'string' ? readFileSync(file) : file;
  } catch (e) {
    throw new OnnxMetadataError(`${source}: cannot read the model file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (bytes.byteLength === 0) throw new OnnxMetadataError(`${source} is empty (0 bytes), not an ONNX model`);
  let proto;
  try {
    proto = decodeModel(bytes);
  } catch (e) {
    throw new OnnxMetadataError(`${source} is not an ONNX model (${(e as Error).message})`);
  }
  // protobuf reads many byte strings as a message with no fields: without a graph it is no model
  if (!proto.graph) throw new OnnxMetadataError(`${source} is not an ONNX model (it has no graph)`);
  const meta = decodeMetadata(proto.metadataProps ?? [], source);
  const graph = proto.graph;
  const initializers = new Set((graph?.initializer ?? []).map((t) => t.name));
  const inputs = (graph?.input ?? []).filter((i) => !initializers.has(i.name));
  const outputs = graph?.output ?? [];
  const extra = outputs.slice(1).map((o) => o.name);
  if (inputs.length !== 1 || outputs.length < 1 || outputs.length > 2 || (extra.length === 1 && extra[0] !== ATTENTION_MAP_NAME)) {
    throw new OnnxMetadataError(`${source}: expected one image input and a logits output (optionally followed by "${ATTENTION_MAP_NAME}"), found ${inputs.length} input(s) and ${outputs.length} output(s)${outputs.length ? ` (${outputs.slice(0, 4).map((o) => quote(o.name ?? '', 60)).join(', ')}${outputs.length > 4 ? ', …' : ''})` : ''}`);
  }
  const input = inputs[0]!;
  const expectedType = meta.inputFormat === 'uint8_nhwc' ? 'uint8' : 'float32';
  const actualType = dtypeFromCode(input.type?.tensorType?.elemType ?? 0);
  if (actualType !== expectedType) throw new OnnxMetadataError(`${source}: input ${quote(input.name ?? '', 60)} is ${actualType}, but input_format ${meta.inputFormat} needs ${expectedType}`);
  const mapDims = outputs[1]?.type?.tensorType?.shape?.dim ?? [];
  const attentionSize = mapDims.length === 2 && mapDims[1]!.dimValue != null ? Number(mapDims[1]!.dimValue) : undefined;
  if (extra.length === 1 && !(attentionSize! > 0)) throw new OnnxMetadataError(`${source}: output "${ATTENTION_MAP_NAME}" should have shape [batch, patches]`);
  return { meta, bytes, inputName: input.name!, outputName: outputs[0]!.name!, attentionMap: extra.length === 1, ...(attentionSize ? { attentionSize } : {}) };
}

/** Opens an exported model from a path or its bytes; `source` names it in errors. */
export async function loadOnnxModel(file: string | Uint8Array, options: SessionOptions = {}, source = typeof file === 'string' ? file : 'the model'): Promise<OnnxModel> {
  const { meta, bytes, inputName, outputName, attentionMap, attentionSize } = inspectOnnxModel(file, source);
  const expectedType = meta.inputFormat === 'uint8_nhwc' ? 'uint8' : 'float32';
  const session = await openSession(bytes, options);
  const [c, h, w] = meta.inputSize;
  const per = c * h * w;
  const classes = meta.classNames.length;

  const runRaw = async (data: Float32Array | Uint8Array): Promise<RunWithAttention> => {
    const batch = data.length / per;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`${source}: ${data.length} values are no whole batch of ${c}×${h}×${w} images`);
    const shape = meta.inputFormat === 'uint8_nhwc' ? [batch, h, w, c] : [batch, c, h, w];
    const out = await session.run({ [inputName]: { dtype: expectedType, data, shape } });
    const logits = out[outputName]!.data as Float32Array;
    if (logits.length !== batch * classes) throw new OnnxMetadataError(`${source}: the model returned ${logits.length / batch} logits per image for ${classes} labels`);
    return { logits, ...(attentionMap ? { attention: out[ATTENTION_MAP_NAME]!.data as Float32Array } : {}) };
  };
  const normalized = (x: Float32Array) => meta.inputFormat === 'uint8_nhwc' ? pixelsFromNormalized(x, meta.inputSize, meta.mean, meta.std) : x;
  const runWithAttention = (x: Float32Array) => runRaw(normalized(x));
  const run = async (x: Float32Array) => (await runRaw(normalized(x))).logits;
  const runPixels = async (pixels: Uint8Array) =>
    (await runRaw(meta.inputFormat === 'uint8_nhwc' ? pixels : normalizePixelsOnHost(pixels, meta.inputSize, meta.mean, meta.std))).logits;

  const executable: Executable = {
    onnx: bytes,
    inputs: [{ name: 'x', dtype: 'float32', shape: [BATCH, c, h, w] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: [BATCH, classes] }],
    async run(feeds: Record<string, Feed>): Promise<Record<string, HostTensor>> {
      const unknown = Object.keys(feeds).filter((k) => k !== 'x');
      if (unknown.length) throw new RangeError(`run: unknown input "${unknown[0]}"; the only input is x`);
      const x = toFloat32(feeds.x);
      const logits = await run(x);
      return { logits: { data: logits, shape: [logits.length / classes, classes] } };
    },
    endProfiling: () => session.endProfiling(),
    dispose: () => session.release(),
  };

  return { meta, bytes, inputName, outputName, attentionMap, ...(attentionSize ? { attentionSize } : {}), run, runPixels, runWithAttention, executable, dispose: () => session.release() };
}

function toFloat32(feed: Feed | undefined): Float32Array {
  if (feed === undefined) throw new RangeError('run: missing input "x"');
  const data: HostArray | readonly number[] = typeof feed === 'object' && 'data' in feed && 'shape' in feed ? feed.data : feed as HostArray | readonly number[];
  return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
}

/** True for paths that name an ONNX file (by extension), for commands that take either kind. */
export const isOnnxPath = (path: string): boolean => path.toLowerCase().endsWith('.onnx');
