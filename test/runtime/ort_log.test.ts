/** A model ONNX Runtime refuses is reported once, as tessera's one-line error: ORT prints nothing of its own. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

const SCRIPT = `
import { trace } from './src/runtime/compile.ts';
import { emitModel } from './src/onnx/emit.ts';
import { decodeModel, encodeModel } from './src/onnx/proto.ts';
import { openSession } from './src/runtime/session.ts';
import { add } from './src/ops/index.ts';
const t = trace((x) => ({ y: add(x, x.graph.constant(Float32Array.of(1, 2, 3, 4), [4], 'float32')) }), [{ name: 'x', shape: ['batch', 4] }]);
const m = decodeModel(emitModel(t.graph, t.outputs).bytes);
const init = m.graph.initializer.find((i) => i.rawData && i.rawData.length === 16);
init.rawData = init.rawData.subarray(0, 2);
try { await openSession(encodeModel(m), { threads: 1 }); console.log('loaded'); } catch (e) { console.log('ERR ' + e.message); }
`;

describe('ONNX Runtime logging', () => {
  it("a refused model gives tessera's error and no ORT log lines on stderr", () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: root, encoding: 'utf8' });
    expect(r.stdout.trim()).toMatch(/^ERR ONNX Runtime could not load the model on provider "cpu": .*raw_data size \(2 bytes\)/);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.split('\n').filter((l) => /onnxruntime|\[E:/.test(l))).toEqual([]);
  }, 60_000);
});
