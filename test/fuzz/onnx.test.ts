/**
 * Fuzzing what reads an exported .onnx file: the protobuf decode and tessera's metadata checks
 * (inspectOnnxModel: mutated bytes of three small exports, models re-encoded with hostile
 * metadata_props and graph inputs/outputs, and decodeMetadata on its own), then ONNX Runtime's
 * loader behind loadOnnxModel on a smaller number of mutated files. Any input gives a described
 * model, or a one-line OnnxMetadataError (loadOnnxModel: or the one-line Error that names ONNX
 * Runtime's refusal); none crashes the process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor } from '../../src/checkpoint/checkpoint.js';
import { exportModel } from '../../src/export/export.js';
import { createModel } from '../../src/models/registry.js';
import { decodeModel, encodeModel, onnx } from '../../src/onnx/proto.js';
import { decodeMetadata, encodeMetadata, OnnxMetadataError, type OnnxModelMeta } from '../../src/runtime/onnx_metadata.js';
import { inspectOnnxModel, loadOnnxModel, type OnnxModelFile } from '../../src/runtime/onnx_model.js';
import { expectAllowed, expectAllowedAsync, fc, fuzz, fuzzAsync, mutatedBytes, peakRss, RSS_GROWTH_LIMIT, timeout, utf8 } from './helpers.js';

let corpus: Uint8Array[] = [];
let meta: OnnxModelMeta;
/** Fresh decoded copies of the corpus (tests edit them). */
const protos = () => corpus.map((b) => decodeModel(b));

function wellFormedMeta(m: OnnxModelMeta) {
  expect(m.classNames.length).toBeGreaterThan(0);
  expect(m.inputSize).toHaveLength(3);
  expect(m.inputSize.every((d) => Number.isInteger(d) && d > 0)).toBe(true);
  for (const list of [m.mean, m.std]) expect(list.length === 1 || list.length === m.inputSize[0]).toBe(true);
  expect(m.cropPct > 0 && m.cropPct <= 1).toBe(true);
}
const wellFormed = (f: OnnxModelFile) => {
  wellFormedMeta(f.meta);
  expect(typeof f.inputName).toBe('string');
  expect(typeof f.outputName).toBe('string');
};

const inspect = (b: Uint8Array) => expectAllowed('inspectOnnxModel', () => inspectOnnxModel(b, 'fuzz.onnx'), {
  errors: [OnnxMetadataError], inputBytes: b.byteLength, check: wellFormed,
});

let rss0 = 0;
beforeAll(() => {
  rss0 = peakRss();
  const model = createModel('vit_tiny_patch4_28', { seed: 5, depth: 1, embedDim: 16, numHeads: 1 });
  const m = metaFor('vit_tiny_patch4_28', model, ['t-shirt', 'trouser', 'pullover']);
  const exports = [exportModel(model, m), exportModel(model, m, { preprocess: true }), exportModel(model, m, { attentionMap: true })];
  corpus = exports.map((e) => e.bytes);
  meta = exports[0]!.meta;
});
afterAll(() => { expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT); });

const METADATA_VALUES = ['', ' ', 'null', '[]', '{}', '[1]', '[0]', '[-1]', '[1, 28, 28]', '[3, 0, 28]', '[1e999]', '["a"]', '[1, "a"]', '0', '1', '1.5', 'NaN',
  'bilinear', 'bicubic', 'nearest', 'float32_nchw', 'uint8_nhwc', 'int8_dynamic', 'none', 'vit', 'not a family', '{"depth": 1}', '[[[[[[[[]]]]]]]]',
  '\n', 'x'.repeat(5000), '[' + '1,'.repeat(2000) + '1]'];

describe('fuzz: ONNX files', () => {
  it('the exports inspect', () => {
    for (const b of corpus) expect(inspect(b).ok).toBe(true);
  });

  it('mutated bytes of three exports (float, uint8 input, attention map) and random bytes', () => {
    // protobuf tags and lengths: 0x3a graph, 0x72 metadata_props, 0x0a/0x12 key/value
    const dictionary = [[0x72, 0x00], [0x72, 0xff, 0xff, 0xff, 0xff, 0x0f], [0x3a, 0x7f], [0x0a, 0x0a], ...['model_name', 'labels', 'input_size', 'uint8_nhwc', 'attention_map'].map((s) => [...utf8(s)])]
      .map((b) => Uint8Array.from(b));
    fuzz('onnx-bytes', [mutatedBytes(corpus, { dictionary })], (b) => { inspect(b); }, 800);
  }, timeout(60_000));

  it('models re-encoded with hostile metadata_props and graph inputs and outputs', () => {
    const propKeys = Object.keys(encodeMetadata({ ...meta, family: 'vit', config: {} }));
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('prop' as const), key: fc.oneof(fc.constantFrom(...propKeys), fc.string({ maxLength: 10 })), value: fc.oneof(fc.constantFrom(...METADATA_VALUES), fc.string({ maxLength: 20, unit: 'binary' }), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? '')) }),
      fc.record({ kind: fc.constant('drop' as const), key: fc.constantFrom(...propKeys) }),
      fc.record({ kind: fc.constant('io' as const), which: fc.constantFrom('input', 'output'), op: fc.constantFrom('remove', 'duplicate', 'rename', 'retype', 'reshape', 'clear'), name: fc.constantFrom('x', 'pixels', 'logits', 'attention_map', '', 'extra'), elemType: fc.integer({ min: -1, max: 30 }) }),
    );
    fuzz('onnx-structure', [fc.nat({ max: 2 }), fc.array(edit, { minLength: 1, maxLength: 5 })], (which, edits) => {
      const m = decodeModel(corpus[which]!);
      for (const e of edits) {
        const props = m.metadataProps ?? [];
        if (e.kind === 'prop') {
          const p = props.find((q) => q.key === e.key);
          if (p) p.value = e.value;
          else props.push({ key: e.key, value: e.value });
        } else if (e.kind === 'drop') {
          m.metadataProps = props.filter((q) => q.key !== e.key);
        } else {
          const list = e.which === 'input' ? m.graph!.input! : m.graph!.output!;
          if (e.op === 'remove') list.shift();
          else if (e.op === 'duplicate' && list[0]) list.push({ ...list[0], name: e.name });
          else if (e.op === 'rename' && list[0]) list[0].name = e.name;
          else if (e.op === 'retype' && list[0]?.type?.tensorType) list[0].type.tensorType.elemType = e.elemType;
          else if (e.op === 'reshape' && list[list.length - 1]?.type?.tensorType) list[list.length - 1]!.type!.tensorType!.shape = { dim: [{ dimParam: 'batch' }, ...(e.elemType > 0 ? [{ dimValue: e.elemType - 10 }] : [])] };
          else if (e.op === 'clear') list.length = 0;
        }
      }
      inspect(encodeModel(m));
    }, 800);
  }, timeout(60_000));

  it('decodeMetadata on arbitrary key/value lists', () => {
    const base = Object.entries(encodeMetadata(meta)).map(([key, value]) => ({ key, value }));
    const prop = fc.record({ key: fc.oneof(fc.constantFrom(...base.map((p) => p.key)), fc.string({ maxLength: 8 }), fc.constant(null)), value: fc.oneof(fc.constantFrom(...METADATA_VALUES), fc.string({ maxLength: 30 }), fc.constant(null)) });
    fuzz('onnx-metadata', [fc.array(prop, { maxLength: 6 }), fc.boolean()], (extra, keepBase) => {
      const props = [...(keepBase ? base : []), ...extra];
      expectAllowed('decodeMetadata', () => decodeMetadata(props, 'fuzz.onnx'), { errors: [OnnxMetadataError], inputBytes: JSON.stringify(props).length, check: wellFormedMeta });
    }, 3000);
  }, timeout(60_000));

  it('loadOnnxModel (ONNX Runtime checks and loads the graph) on exports with hostile nodes and initializers, metadata intact', async () => {
    const OPS = ['Add', 'MatMul', 'Gemm', 'Reshape', 'Transpose', 'Softmax', 'Concat', 'Gather', 'Slice', 'LayerNormalization', 'Conv', 'NotAnOp', ''];
    const INTS = [-(2 ** 31), -100, -2, -1, 0, 1, 2, 3, 100, 2 ** 31 - 1];
    const edit = fc.record({
      node: fc.nat(), kind: fc.constantFrom('opType', 'dropInput', 'swapInput', 'attrInt', 'attrInts', 'initDims', 'initType', 'initData', 'dropInit', 'dropNode'),
      op: fc.constantFrom(...OPS), other: fc.nat(), int: fc.constantFrom(...INTS), ints: fc.array(fc.constantFrom(...INTS), { maxLength: 5 }),
    });
    await fuzzAsync('onnx-ort', [fc.nat({ max: 2 }), fc.array(edit, { minLength: 1, maxLength: 3 })], async (which, edits) => {
      const m = protos()[which]!;
      const g = m.graph!;
      const nodes = g.node!, inits = g.initializer!;
      for (const e of edits) {
        const n = nodes[e.node % nodes.length]!, t = inits[e.node % inits.length]!;
        const attrs = n.attribute ?? [];
        if (e.kind === 'opType') n.opType = e.op;
        else if (e.kind === 'dropInput') n.input = n.input!.slice(1);
        else if (e.kind === 'swapInput' && n.input!.length) n.input![0] = nodes[e.other % nodes.length]!.output![0] ?? '';
        else if (e.kind === 'attrInt' && attrs.length) attrs[e.other % attrs.length]!.i = e.int;
        else if (e.kind === 'attrInts' && attrs.length) attrs[e.other % attrs.length]!.ints = e.ints;
        else if (e.kind === 'initDims') t.dims = e.ints;
        else if (e.kind === 'initType') t.dataType = e.int & 31;
        else if (e.kind === 'initData' && t.rawData) t.rawData = t.rawData.subarray(0, e.other % (t.rawData.length + 1));
        else if (e.kind === 'dropInit') inits.splice(e.node % inits.length, 1);
        else if (e.kind === 'dropNode') nodes.splice(e.node % nodes.length, 1);
      }
      const b = encodeModel(m);
      const out = await expectAllowedAsync('loadOnnxModel', () => loadOnnxModel(b, { threads: 1 }, 'fuzz.onnx'), { errors: [OnnxMetadataError, Error], inputBytes: b.byteLength, maxMs: 10_000 });
      if (out.ok) await out.value.dispose();
    }, 200);
  }, timeout(90_000));

  it('regression: output names are quoted on one line (a name holding newlines made the message several lines)', () => {
    const m = protos()[0]!;
    const names = ['\nblocks.0.norm1.weight\n', 'x'.repeat(5000), 'a', 'b', 'c'];
    const out = inspect(encodeModel({ ...m, graph: { ...m.graph, output: names.map((name) => ({ ...m.graph!.output![0], name })) } }));
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/found 1 input\(s\) and 5 output\(s\) \("\\nblocks\.0\.norm1\.weight\\n", "x+…, "a", "b", …\)$/);
  });
  it('regression: ONNX Runtime\'s refusal is one line naming the reason (its message ran over lines of C++ frames)', async () => {
    // found by the ORT fuzz: an initializer's raw_data cut short
    const m = protos()[0]!;
    const t = m.graph!.initializer!.find((i) => i.name === 'k11')!;
    t.rawData = t.rawData!.subarray(0, 2);
    const b = encodeModel(m);
    const out = await expectAllowedAsync('loadOnnxModel', () => loadOnnxModel(b, { threads: 1 }, 'fuzz.onnx'), { errors: [OnnxMetadataError, Error], inputBytes: b.byteLength, maxMs: 10_000 });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.error.message).toMatch(/^ONNX Runtime could not load the model on provider "cpu": tensorprotoutils\.cc:\d+ ValidateEmbeddedTensorProtoDataSizeAndShape Initializer 'k11': raw_data size \(2 bytes\) does not match expected size from shape and data type \(16 bytes\)$/);
  });
});
