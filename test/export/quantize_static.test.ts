/**
 * Static (QDQ, calibrated) int8 export and the fused-attention rewrite, on a model trained on
 * real Fashion-MNIST: standard ops and onnx.checker, what ORT's optimiser makes of the file, and
 * agreement with fp32.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { exportModel, fuseAttentionExport, quantizeStaticExport, type ExportedModel } from '../../src/export/export.js';
import { activationQuantParams } from '../../src/export/quantize_static.js';
import { nchwToNhwc } from '../../src/export/preprocess.js';
import { accuracyOn, compareLogits } from '../../src/export/verify.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { loadOnnxModel, type OnnxModel } from '../../src/runtime/onnx_model.js';
import { openSession } from '../../src/runtime/session.js';
import { checkOnnxModels } from '../helpers/onnx_checker.js';
import { trainedCheckpoint } from './trained.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-qdq-'));
const opened: OnnxModel[] = [];
afterAll(async () => {
  for (const m of opened) await m.dispose();
  rmSync(dir, { recursive: true, force: true });
});
const open = async (bytes: Uint8Array) => {
  const m = await loadOnnxModel(bytes, { threads: 1 });
  opened.push(m);
  return m;
};

let test: TensorDataset;
let fp32: ExportedModel;
let qdq: ExportedModel;
let fused: ExportedModel & { fusedAttention: number };
let fusedQdq: ExportedModel;
/** fp32 logits of the first 1,000 test images */
let reference: Float32Array;
let testPixels: Uint8Array;

beforeAll(async () => {
  const { model, meta } = loadCheckpoint(await trainedCheckpoint(dir));
  test = sliceDataset(await loadBuiltinDataset('fashion-mnist', 'test'), 0, 1000);
  const train = sliceDataset(await loadBuiltinDataset('fashion-mnist', 'train'), 0, 256);
  const calibration = { pixels: nchwToNhwc(train.images.slice(0, 256 * 784), [1, 28, 28]), count: 256 };
  fp32 = exportModel(model, meta);
  qdq = await quantizeStaticExport(fp32, calibration, { session: { threads: 1 } });
  fused = fuseAttentionExport(fp32);
  fusedQdq = await quantizeStaticExport(fused, calibration, { session: { threads: 1 } });
  testPixels = nchwToNhwc(test.images, [1, 28, 28]);
  reference = await (await open(fp32.bytes)).runPixels(testPixels);
}, 300_000);

describe('static int8 (QDQ)', () => {
  it('is QuantizeLinear/DequantizeLinear around every weight matmul, standard ONNX only', () => {
    const g = decodeModel(qdq.bytes).graph!;
    const count = (op: string) => g.node!.filter((n) => n.opType === op).length;
    // patch embedding + 6 blocks × (qkv, proj, fc1, fc2) + head: one activation Q/DQ pair each,
    // one DQ per int8 weight and one per int32 bias
    expect(count('QuantizeLinear')).toBe(26);
    expect(count('DequantizeLinear')).toBe(26 * 3);
    expect(count('DynamicQuantizeLinear')).toBe(0);
    expect(g.node!.every((n) => (n.domain ?? '') === '')).toBe(true);
    const inits = new Map(g.initializer!.map((t) => [t.name, t]));
    expect(inits.has('blocks.0.mlp.fc1.weight')).toBe(false);
    expect(inits.get('blocks.0.mlp.fc1.weight.int8')!.dataType).toBe(3); // int8
    expect(inits.get('blocks.0.mlp.fc1.weight.scale')!.dims!.map(Number)).toEqual([192]); // per output channel
    expect(inits.get('blocks.0.mlp.fc1.bias.int32')!.dataType).toBe(6); // int32
    expect(qdq.meta.quantization).toBe('int8_static');
    expect(qdq.quantization!.weights).toHaveLength(26);
  });

  it('passes onnx.checker (full_check), also with fused attention (a contrib domain the checker accepts)', () => {
    expect(checkOnnxModels([['qdq', qdq.bytes], ['fused', fused.bytes], ['fused_qdq', fusedQdq.bytes]])).toBe('ok');
  });

  it('becomes integer kernels in ORT (QGemm / MatMulIntegerToFloat), no float matmul left on a quantised weight', async () => {
    const optimized = join(dir, 'qdq_opt.onnx');
    const s = await openSession(qdq.bytes, { threads: 1, optimizedModelPath: optimized });
    await s.release();
    const ops = decodeModel(new Uint8Array(readFileSync(optimized))).graph!.node!.map((n) => n.opType);
    const integer = ops.filter((op) => op === 'QGemm' || op === 'MatMulIntegerToFloat').length;
    expect(integer).toBe(26);
    expect(ops.filter((op) => op === 'Gemm')).toHaveLength(0);
  });

  it('stays within 1 point of fp32 top-1 on 1,000 Fashion-MNIST test images, logits within 5% of their range', async () => {
    const m = await open(qdq.bytes);
    const [f, q] = [await accuracyOn(await open(fp32.bytes), test), await accuracyOn(m, test)];
    expect(f.top1).toBeGreaterThan(0.3); // a model that learned something (chance: 0.1)
    expect(Math.abs(f.top1 - q.top1)).toBeLessThanOrEqual(0.01);
    const got = await m.runPixels(testPixels);
    const scale = Math.max(...reference.map(Math.abs));
    const c = compareLogits(reference, got, 10);
    expect(c.maxAbsDiff / scale).toBeLessThan(0.05);
    expect(c.top1Agreement).toBeGreaterThan(0.97);
  });

  it('maps an activation range to uint8 scale and zero point, widened to hold 0', () => {
    expect(activationQuantParams({ min: -1, max: 3 })).toEqual({ scale: 4 / 255, zeroPoint: 64 }); // 255/4 = 63.75
    expect(activationQuantParams({ min: 0.5, max: 2 })).toEqual({ scale: 2 / 255, zeroPoint: 0 });
    expect(activationQuantParams({ min: -2, max: -1 })).toEqual({ scale: 2 / 255, zeroPoint: 255 });
    expect(activationQuantParams({ min: 0, max: 0 })).toEqual({ scale: 1, zeroPoint: 0 });
  });
});

describe('fused attention (com.microsoft.MultiHeadAttention)', () => {
  it('replaces each block\'s attention core: no Softmax or activation MatMul left', () => {
    expect(fused.fusedAttention).toBe(6);
    const g = decodeModel(fused.bytes).graph!;
    const count = (op: string) => g.node!.filter((n) => n.opType === op).length;
    expect(count('MultiHeadAttention')).toBe(6);
    expect(g.node!.filter((n) => n.opType === 'MultiHeadAttention').every((n) => n.domain === 'com.microsoft')).toBe(true);
    expect(count('Softmax')).toBe(0);
    expect(count('MatMul')).toBe(26); // only the weight matmuls
    expect(decodeModel(fused.bytes).opsetImport!.map((o) => o.domain)).toContain('com.microsoft');
  });

  it('gives fp32\'s logits to 1e-4, and with static int8 the same agreement as without it', async () => {
    const got = await (await open(fused.bytes)).runPixels(testPixels);
    expect(compareLogits(reference, got, 10).maxAbsDiff).toBeLessThan(1e-4);
    const q = await (await open(fusedQdq.bytes)).runPixels(testPixels);
    const scale = Math.max(...reference.map(Math.abs));
    expect(compareLogits(reference, q, 10).maxAbsDiff / scale).toBeLessThan(0.05);
  });

  it('leaves a graph without the pattern alone', () => {
    const again = fuseAttentionExport(fused);
    expect(again.fusedAttention).toBe(0);
    expect(again.bytes).toEqual(fused.bytes);
  });
});
