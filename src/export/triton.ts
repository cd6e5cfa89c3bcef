/**
 * A Triton Inference Server model repository for an exported model (`tessera export --triton DIR`):
 *
 *   DIR/<name>/config.pbtxt     ModelConfig in protobuf text format (platform onnxruntime_onnx)
 *   DIR/<name>/labels.txt       one class name per line: the classification extension's label file
 *   DIR/<name>/1/model.onnx     the float32 export
 *   DIR/<name>/2/model.onnx     the int8 export, when one is given
 *
 * Inputs and outputs (names, data types, dims) are read from the ONNX graph itself, so the config
 * cannot drift from the file it describes. Field names and numbers follow Triton's
 * protobuf/model_config.proto (triton-inference-server/common).
 */
import { join } from 'node:path';
import { makeDir, writeFileAtomic } from '../checkpoint/atomic.js';
import type { ModelProto, ValueInfoProto } from '../onnx/proto.js';
import type { ExportedModel } from './export.js';

/** ONNX TensorProto element types → Triton DataType names (the ones an export can have). */
const TRITON_DTYPE: Record<number, string> = {
  1: 'TYPE_FP32', 2: 'TYPE_UINT8', 3: 'TYPE_INT8', 5: 'TYPE_INT16', 6: 'TYPE_INT32', 7: 'TYPE_INT64', 9: 'TYPE_BOOL', 10: 'TYPE_FP16', 11: 'TYPE_FP64',
};

export interface TritonOptions {
  /** The model's directory name under the repository (Triton's model name). */
  name: string;
  /** Largest batch Triton forms (the ONNX batch axis is dynamic). */
  maxBatchSize: number;
  /** Batch sizes dynamic batching prefers to form. */
  preferredBatchSizes: number[];
  /** How long a request may wait for others to batch with. */
  maxQueueDelayMicroseconds: number;
}

export const TRITON_DEFAULTS: Omit<TritonOptions, 'name'> = { maxBatchSize: 32, preferredBatchSizes: [8, 16, 32], maxQueueDelayMicroseconds: 1000 };

export const LABELS_FILE = 'labels.txt';

export interface TensorSpec { name: string; dataType: string; dims: number[] }

/** A graph input/output as Triton describes it: its batch axis (the first, symbolic) left out. */
function tensorSpec(v: ValueInfoProto, where: string): TensorSpec {
  const t = v.type?.tensorType;
  const dataType = TRITON_DTYPE[t?.elemType ?? -1];
  if (!v.name || !t || !dataType) throw new Error(`${where} ${v.name ?? '?'}: expected a tensor of a type Triton knows, got element type ${t?.elemType}`);
  const dims = (t.shape?.dim ?? []).map((d) => (d.dimParam ? -1 : Number(d.dimValue)));
  if (dims[0] !== -1) throw new Error(`${where} ${v.name}: Triton batching needs a symbolic first (batch) axis, got dims [${dims.join(', ')}]`);
  if (dims.slice(1).some((d) => d < 0)) throw new Error(`${where} ${v.name}: only the batch axis may be symbolic, got dims [${dims.join(', ')}]`);
  return { name: v.name, dataType, dims: dims.slice(1) };
}

export function graphSignature(model: ModelProto): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  const initializers = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  return {
    inputs: (model.graph?.input ?? []).filter((v) => !initializers.has(v.name)).map((v) => tensorSpec(v, 'ONNX input')),
    outputs: (model.graph?.output ?? []).map((v) => tensorSpec(v, 'ONNX output')),
  };
}

const str = (s: string) => JSON.stringify(s); // a text-format string: JSON's escapes are a subset

/** config.pbtxt for `model`; the logits output (`labelsFor`) names the labels file. */
export function tritonConfig(model: ModelProto, o: TritonOptions & { labelsFor: string; versions: number[] }): string {
  const { inputs, outputs } = graphSignature(model);
  if (o.preferredBatchSizes.some((b) => b > o.maxBatchSize)) throw new Error(`preferred batch sizes ${o.preferredBatchSizes.join(',')} exceed max_batch_size ${o.maxBatchSize}`);
  const tensor = (kind: string, t: TensorSpec, extra = '') =>
    `${kind} {\n  name: ${str(t.name)}\n  data_type: ${t.dataType}\n  dims: [ ${t.dims.join(', ')} ]\n${extra}}\n`;
  return [
    `name: ${str(o.name)}\n`,
    'platform: "onnxruntime_onnx"\n',
    `max_batch_size: ${o.maxBatchSize}\n`,
    // every version is served (Triton's default serves only the latest, which would hide fp32)
    `version_policy: { specific: { versions: [ ${o.versions.join(', ')} ] } }\n`,
    ...inputs.map((t) => tensor('input', t)),
    ...outputs.map((t) => tensor('output', t, t.name === o.labelsFor ? `  label_filename: ${str(LABELS_FILE)}\n` : '')),
    'dynamic_batching {\n',
    // none preferred: Triton forms batches up to max_batch_size
    ...(o.preferredBatchSizes.length ? [`  preferred_batch_size: [ ${o.preferredBatchSizes.join(', ')} ]\n`] : []),
    `  max_queue_delay_microseconds: ${o.maxQueueDelayMicroseconds}\n}\n`,
  ].join('');
}

/** Triton model names are directory names: keep them to what every shell and URL takes. */
export function tritonModelName(model: string): string {
  return model.replace(/[^A-Za-z0-9_.-]/g, '_');
}

export interface TritonRepository { dir: string; modelDir: string; files: string[] }

/** Writes the repository (each file atomically); `int8` becomes version 2. */
export function writeTritonRepository(dir: string, fp32: ExportedModel, int8: ExportedModel | undefined, o: TritonOptions): TritonRepository {
  const modelDir = join(dir, o.name);
  const versions = int8 ? [1, 2] : [1];
  const config = tritonConfig(fp32.model, { ...o, labelsFor: fp32.outputName, versions });
  if (int8) {
    const a = graphSignature(fp32.model);
    const b = graphSignature(int8.model);
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error('the int8 model has other inputs or outputs than the fp32 one; one config.pbtxt cannot describe both');
  }
  const files: [string, Uint8Array | string][] = [
    [join(modelDir, '1', 'model.onnx'), fp32.bytes],
    ...(int8 ? [[join(modelDir, '2', 'model.onnx'), int8.bytes] as [string, Uint8Array]] : []),
    [join(modelDir, LABELS_FILE), `${fp32.meta.classNames.join('\n')}\n`],
    // last: a repository with a config has all its versions
    [join(modelDir, 'config.pbtxt'), config],
  ];
  for (const v of versions) makeDir(join(modelDir, String(v)));
  for (const [path, data] of files) writeFileAtomic(path, data);
  return { dir, modelDir, files: files.map(([p]) => p) };
}
