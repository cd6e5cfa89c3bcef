/**
 * ONNX export of a model trained on real Fashion-MNIST: onnx.checker, metadata, equality with
 * tessera's own executable, dynamic batch, in-graph preprocessing, and int8 quantisation.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, type CheckpointMeta } from '../../src/checkpoint/checkpoint.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { exportModel, quantizeExport, type ExportedModel } from '../../src/export/export.js';
import { decodeMetadata, encodeMetadata, metaFromCheckpoint } from '../../src/export/metadata.js';
import { nchwToNhwc, normalizePixelsOnHost } from '../../src/export/preprocess.js';
import { accuracyOn, compareLogits } from '../../src/export/verify.js';
import type { ImageModel } from '../../src/models/model.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { loadOnnxModel, type OnnxModel } from '../../src/runtime/onnx_model.js';
import { compileInference } from '../../src/models/executables.js';
import { checkOnnxModels } from '../helpers/onnx_checker.js';
import { trainedCheckpoint } from './trained.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-export-'));
const opened: OnnxModel[] = [];
afterAll(async () => {
  for (const m of opened) await m.dispose();
  rmSync(dir, { recursive: true, force: true });
});

let model: ImageModel;
let meta: CheckpointMeta;
let test: TensorDataset;
let fp32: ExportedModel;
let int8: ExportedModel;
let pre: ExportedModel;
/** 16 test images: uint8 NCHW and normalised float NCHW */
let pixels: Uint8Array;
let x: Float32Array;
let reference: Float32Array;

const open = async (bytes: Uint8Array) => {
  const m = await loadOnnxModel(bytes);
  opened.push(m);
  return m;
};

beforeAll(async () => {
  ({ model, meta } = loadCheckpoint(await trainedCheckpoint(dir)));
  test = sliceDataset(await loadBuiltinDataset('fashion-mnist', 'test'), 0, 1000);
  pixels = test.images.slice(0, 16 * 784);
  x = normalizePixelsOnHost(nchwToNhwc(pixels, [1, 28, 28]), [1, 28, 28], meta.mean, meta.std);
  const exe = await compileInference(model, {});
  reference = (await exe.run({ x })).logits!.data as Float32Array;
  await exe.dispose();
  fp32 = exportModel(model, meta);
  int8 = quantizeExport(fp32);
  pre = exportModel(model, meta, { preprocess: true });
}, 300_000);

describe('fp32 export', () => {
  // Debian's python3-onnx (1.12) knows opsets up to 17, so later opsets are checked by running them
  it('passes onnx.checker (full_check), with and without --preprocess, and int8', () => {
    expect(checkOnnxModels([['fp32', fp32.bytes], ['preprocess', pre.bytes], ['int8', int8.bytes]])).toBe('ok');
  });

  it('exports opsets 18 and 21 that compute the same logits', async () => {
    for (const opset of [18, 21]) {
      const e = exportModel(model, meta, { opset });
      expect(Number(decodeModel(e.bytes).opsetImport![0]!.version)).toBe(opset);
      expect(compareLogits(reference, await (await open(e.bytes)).run(x), 10).maxAbsDiff).toBeLessThanOrEqual(1e-5);
    }
  });

  it('carries labels, preprocessing and the model name in metadata_props', () => {
    const props = Object.fromEntries(decodeModel(fp32.bytes).metadataProps!.map((p) => [p.key, p.value]));
    expect(props.model_name).toBe('vit_tiny_patch4_28');
    expect(JSON.parse(props.labels!)).toEqual(meta.classNames);
    expect(JSON.parse(props.mean!)).toEqual(meta.mean);
    expect(JSON.parse(props.std!)).toEqual(meta.std);
    expect(JSON.parse(props.input_size!)).toEqual([1, 28, 28]);
    expect(props).toMatchObject({ interpolation: 'bilinear', crop_pct: '1', input_format: 'float32_nchw', quantization: 'none' });
    expect(JSON.parse(props.tessera_vit_config!)).toEqual(meta.config);
  });

  it('stores the weights as initializers and has one input with a symbolic batch axis', () => {
    const g = decodeModel(fp32.bytes).graph!;
    expect(g.input!.map((i) => i.name)).toEqual(['input']);
    const dims = g.input![0]!.type!.tensorType!.shape!.dim!;
    expect(dims[0]!.dimParam).toBe('batch');
    expect(dims.slice(1).map((d) => Number(d.dimValue))).toEqual([1, 28, 28]);
    expect(g.output![0]!.type!.tensorType!.shape!.dim![0]!.dimParam).toBe('batch');
    const inits = new Set(g.initializer!.map((t) => t.name));
    for (const [name] of model.namedParameters()) expect(inits.has(name), name).toBe(true);
  });

  it('matches tessera\'s executable to 1e-5 on 16 Fashion-MNIST test images, run by ORT from its bytes', async () => {
    const m = await open(fp32.bytes);
    const got = await m.run(x);
    const c = compareLogits(reference, got, 10);
    expect(c.maxAbsDiff).toBeLessThanOrEqual(1e-5);
    expect(c.top1Agreement).toBe(1);
  });

  it('accepts any batch size: batches of 1, 3 and 16 give the same rows', async () => {
    const m = await open(fp32.bytes);
    const whole = await m.run(x);
    const one = await m.run(x.subarray(5 * 784, 6 * 784));
    const three = await m.run(x.subarray(0, 3 * 784));
    expect(one.length).toBe(10);
    expect(compareLogits(whole.subarray(50, 60), one, 10).maxAbsDiff).toBeLessThanOrEqual(1e-5);
    expect(compareLogits(whole.subarray(0, 30), three, 10).maxAbsDiff).toBeLessThanOrEqual(1e-5);
  });

  it('loads back with its metadata through the runtime loader', async () => {
    const m = await open(fp32.bytes);
    expect(m.meta).toEqual(metaFromCheckpoint(meta));
    expect([m.inputName, m.outputName]).toEqual(['input', 'logits']);
    const logits = (await m.executable.run({ x })).logits!;
    expect(logits.shape).toEqual([16, 10]);
  });
});

describe('--preprocess', () => {
  it('takes uint8 pixels [B, H, W, C] and equals manual preprocessing to 1e-5', async () => {
    const g = decodeModel(pre.bytes).graph!;
    expect(g.input![0]!.name).toBe('image');
    expect(g.input![0]!.type!.tensorType!.elemType).toBe(2); // uint8
    const m = await open(pre.bytes);
    expect(m.meta.inputFormat).toBe('uint8_nhwc');
    const fromPixels = await m.runPixels(nchwToNhwc(pixels, [1, 28, 28]));
    expect(compareLogits(reference, fromPixels, 10).maxAbsDiff).toBeLessThanOrEqual(1e-5);
    // normalised floats are turned back into the exact pixels for such a model
    expect(compareLogits(reference, await m.run(x), 10).maxAbsDiff).toBeLessThanOrEqual(1e-5);
  });
});

describe('int8 quantisation', () => {
  it('quantises every weight matmul per output channel with standard ONNX ops', () => {
    const g = decodeModel(int8.bytes).graph!;
    const count = (op: string) => g.node!.filter((n) => n.opType === op).length;
    // patch embedding + 6 blocks × (qkv, proj, fc1, fc2) + head
    expect(count('MatMulInteger')).toBe(26);
    expect(count('DynamicQuantizeLinear')).toBe(26);
    expect(count('MatMul')).toBe(12); // attention's QKᵀ and AV stay float
    expect(g.node!.every((n) => (n.domain ?? '') === '')).toBe(true);
    const inits = new Map(g.initializer!.map((t) => [t.name, t]));
    expect(inits.has('blocks.0.mlp.fc1.weight')).toBe(false);
    expect(inits.get('blocks.0.mlp.fc1.weight.int8')!.dataType).toBe(3); // int8
    expect(inits.get('blocks.0.mlp.fc1.weight.int8')!.dims!.map(Number)).toEqual([96, 192]); // [K, N]
    expect(inits.get('blocks.0.mlp.fc1.weight.scale')!.dims!.map(Number)).toEqual([192]); // per output channel
    expect(int8.quantization!.weights).toHaveLength(26);
    expect(int8.meta.quantization).toBe('int8_dynamic');
  });

  it('is under a third of the fp32 file', () => {
    expect(int8.bytes.byteLength).toBeLessThan(fp32.bytes.byteLength / 3);
  });

  it('stays within 0.5 points of fp32 top-1 on 1,000 Fashion-MNIST test images', async () => {
    const [f, q] = [await accuracyOn(await open(fp32.bytes), test), await accuracyOn(await open(int8.bytes), test)];
    expect(f.images).toBe(1000);
    expect(f.top1).toBeGreaterThan(0.3); // a model that learned something (chance: 0.1)
    expect(Math.abs(f.top1 - q.top1)).toBeLessThanOrEqual(0.005);
  });

  it('keeps logits close to fp32 (small relative error)', async () => {
    const got = await (await open(int8.bytes)).run(x);
    const scale = Math.max(...reference.map(Math.abs));
    expect(compareLogits(reference, got, 10).maxAbsDiff / scale).toBeLessThan(0.05);
  });

  it('keeps the weights in 7 bits unless asked, so that no pair of u8 x s8 products overflows int16', () => {
    // x86 without VNNI (VPMADDUBSW) adds two uint8 x int8 products in a saturating int16
    const largest = (q: ExportedModel) => {
      const t = decodeModel(q.bytes).graph!.initializer!.find((i) => i.name === 'blocks.0.mlp.fc1.weight.int8')!;
      return Math.max(...new Int8Array(t.rawData!.buffer, t.rawData!.byteOffset, t.rawData!.byteLength).map(Math.abs));
    };
    expect(int8.quantization!.weightQmax).toBe(64);
    expect(largest(int8)).toBe(64); // per channel: each column's largest weight maps to ±64
    expect(2 * 255 * largest(int8)).toBeLessThanOrEqual(32767);
    const full = quantizeExport(fp32, { fullRangeWeights: true });
    expect(full.quantization!.weightQmax).toBe(127);
    expect(largest(full)).toBe(127);
  });

  it('per tensor and with exclusions on request', () => {
    const q = quantizeExport(fp32, { perChannel: false, exclude: ['head.weight'] });
    const g = decodeModel(q.bytes).graph!;
    expect(g.node!.filter((n) => n.opType === 'MatMulInteger')).toHaveLength(25);
    expect(g.initializer!.find((t) => t.name === 'head.weight')).toBeDefined();
    expect(g.initializer!.find((t) => t.name === 'blocks.0.attn.qkv.weight.scale')!.dims).toEqual([]);
  });
});

describe('metadata', () => {
  it('round-trips and rejects files without it, naming the key', () => {
    const m = metaFromCheckpoint(meta, 'uint8_nhwc');
    const props = Object.entries(encodeMetadata(m)).map(([key, value]) => ({ key, value }));
    expect(decodeMetadata(props, 'f.onnx')).toEqual(m);
    expect(() => decodeMetadata([], 'f.onnx')).toThrow(/f\.onnx has no "model_name" in its metadata_props/);
    const broken = props.map((p) => (p.key === 'std' ? { key: 'std', value: '[0]' } : p));
    expect(() => decodeMetadata(broken, 'f.onnx')).toThrow(/f\.onnx: metadata "std" is "\[0\]", expected a JSON array of positive numbers/);
  });

  it('the loader refuses a file that is not an exported model with one clear error', async () => {
    await expect(loadOnnxModel(new Uint8Array([1, 2, 3, 4, 5]), {}, 'junk.onnx')).rejects.toThrow(/junk\.onnx is not an ONNX model/);
    await expect(loadOnnxModel(join(dir, 'missing.onnx'))).rejects.toThrow(/missing\.onnx: cannot read the model file \(ENOENT\)/);
  });
});
