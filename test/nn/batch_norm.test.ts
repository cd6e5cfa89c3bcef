/**
 * BatchNorm2d against torch.nn.BatchNorm2d (scripts/make_engine_goldens.py, `bn_net`): conv →
 * BN → SiLU → depthwise conv (stride 2) → BN (momentum None) → SiLU, two training steps with an
 * SGD update between them (outputs, loss, input and parameter gradients, running statistics and
 * num_batches_tracked after each), then eval outputs from the running statistics.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { compile } from '../../src/runtime/compile.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { Module, tracedBufferUpdates } from '../../src/nn/module.js';
import { BatchNorm2d, Conv2d } from '../../src/nn/layers.js';
import { Random } from '../../src/random.js';
import { relError } from '../helpers/random.js';

interface Arr { shape: number[]; data: number[] }
interface Step { x: Arr; cotangent: Arr; output: Arr; loss: number; grads: Record<string, Arr>; grad_x: Arr; buffers: Record<string, Arr> }
const golden = JSON.parse(readFileSync(new URL('../fixtures/engine_goldens.json', import.meta.url), 'utf8')).bn_net as {
  lr: number; params: Record<string, Arr>; buffers: Record<string, Arr>; steps: Step[]; eval: { x: Arr; output: Arr };
};
const TOL = 1e-5;

class ConvBn extends Module {
  conv: Conv2d;
  bn: BatchNorm2d;
  constructor(inChans: number, outChans: number, stride: number, groups: number, momentum: number | null) {
    super();
    this.conv = this.addChild('conv', new Conv2d(inChans, outChans, 3, new Random(0), { stride, padding: 1, groups, bias: false }));
    this.bn = this.addChild('bn', new BatchNorm2d(outChans, { momentum }));
  }

  forward(x: Tensor, train: boolean): Tensor {
    return ops.silu(this.bn.forward(this.conv.forward(x), { train }));
  }
}

class BnNet extends Module {
  stem = this.addChild('stem', new ConvBn(3, 8, 1, 1, 0.1));
  dw = this.addChild('dw', new ConvBn(8, 8, 2, 8, null));
  forward(x: Tensor, train: boolean): Tensor {
    return this.dw.forward(this.stem.forward(x, train), train);
  }
}

const toState = (arrs: Record<string, Arr>) =>
  Object.fromEntries(Object.entries(arrs).map(([k, v]) => [k, { data: Float32Array.from(v.data), shape: v.shape }]));

function loadedNet(): BnNet {
  const net = new BnNet();
  net.loadStateDict(toState({ ...golden.params, ...golden.buffers }));
  return net;
}

describe('BatchNorm2d', () => {
  it("has PyTorch's parameters and buffers, num_batches_tracked a scalar", () => {
    const bn = new BatchNorm2d(4);
    expect(bn.namedState().map(([k, p]) => [k, p.shape])).toEqual([
      ['weight', [4]], ['bias', [4]], ['running_mean', [4]], ['running_var', [4]], ['num_batches_tracked', []],
    ]);
    const keys = (m: string) => [`${m}.conv.weight`, ...['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((k) => `${m}.bn.${k}`)];
    expect(Object.keys(loadedNet().stateDict())).toEqual([...keys('stem'), ...keys('dw')]);
    expect(new Set([...keys('stem'), ...keys('dw')])).toEqual(new Set([...Object.keys(golden.params), ...Object.keys(golden.buffers)]));
  });

  it('trains as torch.nn.BatchNorm2d: batch statistics, gradients, running statistics over two steps', async () => {
    const net = loadedNet();
    const paramKeys = Object.keys(golden.params);
    let updates: string[] = [];
    const exe = await compile((x, cot) => {
      const y = net.forward(x, true);
      const found = tracedBufferUpdates(x.graph);
      updates = [...found.keys()];
      return { y, loss: ops.sum(ops.mul(y, cot)), ...Object.fromEntries([...found].map(([k, t]) => [`buffer/${k}`, t])) };
    }, [{ name: 'x', shape: ['batch', 3, 6, 6] }, { name: 'cot', shape: ['batch', 8, 3, 3] }], { grad: { wrt: ['x', ...paramKeys] } });
    expect(updates.sort()).toEqual(Object.keys(golden.buffers).sort());

    const params = new Map(net.namedParameters());
    const buffers = new Map(net.namedBuffers());
    for (const [i, step] of golden.steps.entries()) {
      const out = await exe.run({ x: step.x.data, cot: step.cotangent.data });
      expect(relError(out.y!.data as Float32Array, step.output.data), `step ${i + 1} output`).toBeLessThanOrEqual(TOL);
      expect(Math.abs(Number(out.loss!.data[0]) - step.loss) / Math.abs(step.loss)).toBeLessThanOrEqual(TOL);
      expect(relError(out['grad/x']!.data as Float32Array, step.grad_x.data), `step ${i + 1} grad x`).toBeLessThanOrEqual(TOL);
      for (const k of paramKeys) {
        expect(relError(out[`grad/${k}`]!.data as Float32Array, step.grads[k]!.data), `step ${i + 1} grad ${k}`).toBeLessThanOrEqual(TOL);
      }
      for (const k of updates) {
        const got = out[`buffer/${k}`]!.data as Float32Array;
        expect(relError(got, step.buffers[k]!.data), `step ${i + 1} ${k}`).toBeLessThanOrEqual(TOL);
        buffers.get(k)!.data.set(got); // as the trainer copies them back
      }
      for (const k of paramKeys) {
        const p = params.get(k)!.data;
        const grad = out[`grad/${k}`]!.data as Float32Array;
        for (let j = 0; j < p.length; j++) p[j] = p[j]! - golden.lr * grad[j]!;
      }
    }
    expect(buffers.get('stem.bn.num_batches_tracked')!.data[0]).toBe(golden.steps[1]!.buffers['stem.bn.num_batches_tracked']!.data[0]);
    await exe.dispose();

    const evalExe = await compile((x) => net.forward(x, false), [{ name: 'x', shape: ['batch', 3, 6, 6] }]);
    const y = await evalExe.run({ x: golden.eval.x.data });
    expect(relError(y.output!.data as Float32Array, golden.eval.output.data), 'eval output').toBeLessThanOrEqual(TOL);
    await evalExe.dispose();
  });

  it('normalises with the running statistics as one affine in eval, and traces no buffer update', async () => {
    const net = loadedNet();
    let traced = -1;
    const exe = await compile((x) => {
      const y = net.forward(x, false);
      traced = tracedBufferUpdates(x.graph).size;
      return y;
    }, [{ name: 'x', shape: ['batch', 3, 6, 6] }]);
    expect(traced).toBe(0);
    const nodeOps = (decodeModel(exe.onnx).graph!.node ?? []).map((n) => String(n.opType));
    expect(nodeOps.filter((o) => o.startsWith('Reduce'))).toEqual([]);
    // per BatchNorm: one Mul and one Add over the activations, after the [C]-sized folding
    expect(nodeOps.filter((o) => o === 'Conv')).toHaveLength(2);
    await exe.dispose();
  });
});

