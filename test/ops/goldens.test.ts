/**
 * PyTorch goldens (scripts/make_engine_goldens.py): forward and gradients of each primitive
 * family, a 2-layer MLP and one transformer block, computed here in float32 and compared with
 * PyTorch's float64 results to 1e-5 relative (max |Δ| / max |reference|).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ops/index.js';
import { grad } from '../../src/autodiff/grad.js';
import { compile } from '../../src/runtime/compile.js';
import type { Tensor } from '../../src/ir/tensor.js';
import type { DType } from '../../src/ir/dtype.js';
import { Module } from '../../src/nn/module.js';
import { Linear } from '../../src/nn/layers.js';
import { Block } from '../../src/nn/transformer.js';
import { Random } from '../../src/random.js';
import { relError } from '../helpers/random.js';

interface Arr { shape: number[]; data: number[]; dtype?: string }
interface Case { name: string; op: string; attrs: Record<string, any>; inputs: Arr[]; output: Arr; cotangent?: Arr; grads?: (Arr | null)[] }
const goldens = JSON.parse(readFileSync(new URL('../fixtures/engine_goldens.json', import.meta.url), 'utf8'));
const TOL = 1e-5;

const OPS: Record<string, (xs: Tensor[], a: Record<string, any>) => Tensor> = {
  add: ([a, b]) => ops.add(a!, b!), sub: ([a, b]) => ops.sub(a!, b!), mul: ([a, b]) => ops.mul(a!, b!),
  div: ([a, b]) => ops.div(a!, b!), pow: ([a, b]) => ops.pow(a!, b!),
  maximum: ([a, b]) => ops.maximum(a!, b!), minimum: ([a, b]) => ops.minimum(a!, b!),
  neg: ([a]) => ops.neg(a!), exp: ([a]) => ops.exp(a!), log: ([a]) => ops.log(a!), sqrt: ([a]) => ops.sqrt(a!),
  tanh: ([a]) => ops.tanh(a!), erf: ([a]) => ops.erf(a!), abs: ([a]) => ops.abs(a!), sigmoid: ([a]) => ops.sigmoid(a!),
  where: ([c, a, b]) => ops.where(c!, a!, b!),
  equal: ([a, b]) => ops.equal(a!, b!), less: ([a, b]) => ops.less(a!, b!), greater: ([a, b]) => ops.greater(a!, b!),
  less_equal: ([a, b]) => ops.lessEqual(a!, b!), greater_equal: ([a, b]) => ops.greaterEqual(a!, b!),
  cast: ([a], { to }) => ops.cast(a!, to),
  sum: ([a], { axes, keepdims }) => ops.sum(a!, axes, keepdims),
  mean: ([a], { axes, keepdims }) => ops.mean(a!, axes, keepdims),
  max: ([a], { axes, keepdims }) => ops.max(a!, axes, keepdims),
  reshape: ([a], { shape }) => ops.reshape(a!, shape),
  transpose: ([a], { perm }) => ops.transpose(a!, perm),
  expand: ([a], { shape }) => ops.expand(a!, shape),
  concat: (xs, { axis }) => ops.concat(xs, axis),
  slice: ([a], { axes, starts, ends }) => ops.slice(a!, axes, starts, ends),
  gather: ([a, i], { axis }) => ops.gather(a!, i!, axis),
  squeeze: ([a], { axes }) => ops.squeeze(a!, axes),
  unsqueeze: ([a], { axes }) => ops.unsqueeze(a!, axes),
  pad: ([a], { pads, value }) => ops.pad(a!, pads, value),
  matmul: ([a, b]) => ops.matmul(a!, b!),
  conv2d: ([x, w, b], a) => ops.conv2d(x!, w!, b, a),
  avg_pool2d: ([x], { kernel, stride, padding }) => ops.avgPool2d(x!, kernel, stride, padding),
  softmax: ([x], { axis }) => ops.softmax(x!, axis),
  log_softmax: ([x], { axis }) => ops.logSoftmax(x!, axis),
  layer_norm: ([x, w, b], { eps }) => ops.layerNorm(x!, w!, b!, eps),
  group_norm: ([x, w, b], { groups, eps }) => ops.groupNorm(x!, groups, w!, b!, eps),
  gelu: ([x]) => ops.gelu(x!),
  silu: ([x]) => ops.silu(x!),
  resize_bilinear: ([x], { size, align_corners }) => ops.resizeBilinear(x!, size, align_corners),
  roll: ([x], { shifts, axes }) => ops.roll(x!, shifts, axes),
  batch_norm: ([x, w, b], { eps }) => ops.batchNorm(x!, w!, b!, eps),
  argmax: ([x], { axis, keepdims }) => ops.argmax(x!, axis, keepdims),
  cross_entropy: ([l, y], { smoothing }) => ops.crossEntropy(l!, y!, { smoothing }),
};

/** Float inputs run in float32 (the dtype users train in), except the source of a cast. */
const runDtype = (c: Case, a: Arr): DType =>
  a.dtype === 'int64' ? 'int64' : a.dtype === 'bool' ? 'bool' : c.op === 'cast' ? 'float64' : 'float32';

describe('PyTorch goldens: primitives', () => {
  for (const c of goldens.ops as Case[]) {
    it(c.name, async () => {
      const dtypes = c.inputs.map((a) => runDtype(c, a));
      const floats = dtypes.map((d, i) => (d.startsWith('float') ? i : -1)).filter((i) => i >= 0);
      const exe = await compile((...xs) => {
        const out = OPS[c.op]!(xs.slice(0, c.inputs.length), c.attrs);
        if (!c.cotangent) return { out };
        const cot = xs[c.inputs.length]!;
        const loss = ops.sum(ops.mul(ops.cast(out, 'float32'), cot));
        const gs = grad(loss, floats.map((i) => xs[i]!));
        return { out, ...Object.fromEntries(gs.map((g, j) => [`g${floats[j]}`, g])) };
      }, [
        ...c.inputs.map((a, i) => ({ name: `x${i}`, shape: a.shape, dtype: dtypes[i] })),
        ...(c.cotangent ? [{ name: 'cot', shape: c.output.shape, dtype: 'float32' as DType }] : []),
      ]);
      const feeds = Object.fromEntries(c.inputs.map((a, i) => [`x${i}`, a.data]));
      if (c.cotangent) feeds.cot = c.cotangent.data;
      const res = await exe.run(feeds);
      expect(res.out!.shape).toEqual(c.output.shape);
      expect(relError(Array.from(res.out!.data as Float32Array, Number), c.output.data)).toBeLessThanOrEqual(TOL);
      for (const i of floats) {
        const want = c.grads?.[i];
        if (!want) continue;
        expect(relError(res[`g${i}`]!.data as Float32Array, want.data), `gradient of input ${i}`).toBeLessThanOrEqual(TOL);
      }
      await exe.dispose();
    });
  }
});

class Mlp2 extends Module {
  fc1 = this.addChild('fc1', new Linear(3, 8, new Random(0)));
  fc2 = this.addChild('fc2', new Linear(8, 5, new Random(0)));
  forward(x: Tensor) { return this.fc2.forward(ops.gelu(this.fc1.forward(x))); }
}

const stateDict = (params: Record<string, Arr>) =>
  Object.fromEntries(Object.entries(params).map(([k, v]) => [k, { data: Float32Array.from(v.data), shape: v.shape }]));

describe('PyTorch goldens: models', () => {
  it('2-layer MLP: logits, loss and every gradient', async () => {
    const g = goldens.mlp;
    const mlp = new Mlp2();
    mlp.loadStateDict(stateDict(g.params));
    const exe = await compile((x, y) => {
      const logits = mlp.forward(x);
      return { logits, loss: ops.crossEntropy(logits, y) };
    }, [{ name: 'x', shape: ['batch', 3] }, { name: 'y', shape: ['batch'], dtype: 'int64' }],
    { grad: { wrt: ['x', ...Object.keys(g.params)] } });
    const res = await exe.run({ x: g.x.data, y: g.labels.data });
    expect(relError(res.logits!.data as Float32Array, g.logits.data)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(Number(res.loss!.data[0]) - g.loss) / Math.abs(g.loss)).toBeLessThanOrEqual(TOL);
    expect(relError(res['grad/x']!.data as Float32Array, g.grad_x.data)).toBeLessThanOrEqual(TOL);
    for (const k of Object.keys(g.params)) {
      expect(relError(res[`grad/${k}`]!.data as Float32Array, g.grads[k].data), k).toBeLessThanOrEqual(TOL);
    }
    await exe.dispose();
  });

  it('transformer block (LN → MHSA → residual → LN → GELU-MLP → residual): output and every gradient', async () => {
    const g = goldens.block;
    const block = new Block(12, 3, new Random(0), { mlpRatio: 4, eps: 1e-6 });
    block.loadStateDict(stateDict(g.params));
    const exe = await compile((x, cot) => {
      const y = block.forward(x);
      return { y, loss: ops.sum(ops.mul(y, cot)) };
    }, [{ name: 'x', shape: ['batch', 5, 12] }, { name: 'cot', shape: ['batch', 5, 12] }],
    { grad: { wrt: ['x', ...Object.keys(g.params)] } });
    const res = await exe.run({ x: g.x.data, cot: g.cotangent.data });
    expect(relError(res.y!.data as Float32Array, g.output.data)).toBeLessThanOrEqual(TOL);
    expect(relError(res['grad/x']!.data as Float32Array, g.grad_x.data)).toBeLessThanOrEqual(TOL);
    for (const k of Object.keys(g.params)) {
      expect(relError(res[`grad/${k}`]!.data as Float32Array, g.grads[k].data), k).toBeLessThanOrEqual(TOL);
    }
    await exe.dispose();
  });
});
