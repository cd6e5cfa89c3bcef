// Fit a 2-layer MLP to y = sin(3x) with tessera's engine: trace → grad → ONNX → ORT, SGD on the host.
import { compile, mseLoss, ops, Random } from '../src/engine.js';

const rng = new Random(0);
const init = (n: number, std: number) => Float32Array.from({ length: n }, () => rng.normal() * std);
const params = { w1: init(1 * 32, 1), b1: new Float32Array(32), w2: init(32 * 1, 0.2), b2: new Float32Array(1) };

const step = await compile((x, y) => {
  const p = (name: keyof typeof params, shape: number[]) => x.graph.param(name, params[name], shape);
  const h = ops.tanh(ops.add(ops.matmul(x, p('w1', [1, 32])), p('b1', [32])));
  const pred = ops.add(ops.matmul(h, p('w2', [32, 1])), p('b2', [1]));
  return { loss: mseLoss(pred, y) };
}, [{ name: 'x', shape: ['batch', 1] }, { name: 'y', shape: ['batch', 1] }], { grad: { wrt: 'params' } });

const x = Float32Array.from({ length: 256 }, (_, i) => i / 128 - 1);
const y = x.map((v) => Math.sin(3 * v));
for (let it = 0; it <= 1000; it++) {
  const out = await step.run({ x, y });
  for (const name of Object.keys(params) as (keyof typeof params)[]) {
    const g = out[`grad/${name}`]!.data as Float32Array;
    params[name].forEach((_, i, w) => { w[i]! -= 0.1 * g[i]!; });
  }
  if (it % 250 === 0) console.log(`step ${it}: loss ${(out.loss!.data[0] as number).toFixed(5)}`);
}
await step.dispose();
