/**
 * The exported `attention_map` output: the in-graph attention rollout (mean heads, no discarding)
 * equals the host explainer's rollout row for token and avg pooling and for DeiT's two prefix
 * tokens; the file passes onnx.checker; files without the map still load as before.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { metaFor } from '../../src/checkpoint/checkpoint.js';
import { exportModel } from '../../src/export/export.js';
import { Explainer } from '../../src/explain/explain.js';
import { compileProbe, runProbe } from '../../src/explain/probe.js';
import { attentionRollout, patchRow, sampleOf } from '../../src/explain/rollout.js';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import { loadOnnxModel, type OnnxModel } from '../../src/runtime/onnx_model.js';
import { deterministicInput, deterministicValues } from '../helpers/fixtures.js';
import { checkOnnxModels } from '../helpers/onnx_checker.js';

const opened: OnnxModel[] = [];
afterAll(async () => {
  for (const m of opened) await m.dispose();
});

function smallModel(over: Partial<VitConfig> = {}) {
  const model = new VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 48, depth: 3, numHeads: 3, mlpRatio: 2, ...over });
  for (const [k, p] of model.namedParameters()) p.data = deterministicValues(k, p.size);
  return model;
}

const labels = Array.from({ length: 10 }, (_, i) => `class ${i}`);
const batch = 3;
const x = deterministicInput(batch * 784).map((v, i) => v * Math.cos(0.001 * i * i));

/** The host rollout row per image, as the explainer computes it: [B, N]. */
async function hostMaps(model: VisionTransformer): Promise<Float32Array> {
  const probe = await compileProbe(model, { session: { threads: 1 } });
  const out = await runProbe(probe, x);
  await probe.exe.dispose();
  const { heads, tokens, prefix } = probe;
  const source = new Explainer(model).source;
  const n = tokens - prefix;
  const maps = new Float32Array(batch * n);
  for (let b = 0; b < batch; b++) {
    const layers = out.attentions.map((a) => sampleOf(a, b, heads * tokens * tokens));
    const r = attentionRollout(layers, heads, tokens).at(-1)!;
    maps.set(patchRow(r, tokens, prefix, source), b * n);
  }
  return maps;
}

const cases: [string, Partial<VitConfig>][] = [
  ['token pooling', {}],
  ['avg pooling, no class token', { globalPool: 'avg', classToken: false }],
  ['avg pooling with a class token', { globalPool: 'avg' }],
  ['DeiT distilled (two prefix tokens)', { distilled: true }],
];

describe('attention_map output', () => {
  it.each(cases)('%s: equals the host rollout (Explainer source row) to 1e-5, logits unchanged', async (_name, over) => {
    const model = smallModel(over);
    const meta = metaFor('vit_tiny_patch4_28', model, labels);
    const withMap = exportModel(model, meta, { attentionMap: true });
    expect(withMap.attentionMapName).toBe('attention_map');
    const onnx = await loadOnnxModel(withMap.bytes, { threads: 1 });
    opened.push(onnx);
    expect(onnx.attentionMap).toBe(true);
    expect(onnx.attentionSize).toBe(49);
    const { logits, attention } = await onnx.runWithAttention(x);
    const expected = await hostMaps(model);
    expect(attention!.length).toBe(batch * 49);
    let maxDiff = 0;
    for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(attention![i]! - expected[i]!));
    expect(maxDiff).toBeLessThanOrEqual(1e-5);
    expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(1e-4); // not a flat map
    // the map is an extra output: the logits are those of the plain export
    const plain = await loadOnnxModel(exportModel(model, meta).bytes, { threads: 1 });
    opened.push(plain);
    expect(plain.attentionMap).toBe(false);
    expect((await plain.runWithAttention(x)).attention).toBeUndefined();
    const plainLogits = await plain.run(x);
    for (let i = 0; i < logits.length; i++) expect(Math.abs(logits[i]! - plainLogits[i]!)).toBeLessThanOrEqual(1e-5);
    expect(Array.from(await onnx.run(x))).toEqual(Array.from(logits));
  });

  it('passes onnx.checker (full_check), with and without --preprocess', () => {
    const model = smallModel();
    const meta = metaFor('vit_tiny_patch4_28', model, labels);
    const files: [string, Uint8Array][] = [
      ['map', exportModel(model, meta, { attentionMap: true }).bytes],
      ['map-preprocess', exportModel(model, meta, { attentionMap: true, preprocess: true }).bytes],
      ['map-avg', exportModel(smallModel({ globalPool: 'avg', classToken: false }), meta, { attentionMap: true }).bytes],
    ];
    expect(checkOnnxModels(files)).toBe('ok');
  });
});
