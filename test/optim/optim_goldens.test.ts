/**
 * Optimisers and LR schedules against PyTorch over 20 steps (scripts/make_optim_goldens.py):
 * the same gradients go in, and the LR trajectory and the parameters after every step must
 * match torch.optim (AdamW, SGD with momentum/Nesterov) and its schedulers. Also the
 * label-smoothing cross-entropy and its gradient.
 */
import { describe, expect, it } from 'vitest';
import { Parameter } from '../../src/nn/module.js';
import { AdamW, SGD, paramSpecs, type Optimizer } from '../../src/optim/adamw.js';
import { makeSchedule, type Schedule } from '../../src/optim/schedule.js';
import { compile } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';
import { grad } from '../../src/autodiff/grad.js';
import { readJsonFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const goldens = readJsonFixture('optim_goldens.json');
const STEPS: number = goldens.steps;

function scheduleFor(sched: any, baseLr: number): Schedule {
  const base = { baseLr, totalSteps: STEPS, warmupSteps: 0, warmupLr: 0, minLr: 0, decaySteps: 1, decayRate: 1 };
  switch (sched.type) {
    case 'constant': return makeSchedule({ ...base, kind: 'constant' });
    case 'StepLR': return makeSchedule({ ...base, kind: 'step', decaySteps: sched.step_size, decayRate: sched.gamma });
    case 'SequentialLR': {
      const [linear, cosine] = sched.schedulers;
      // LinearLR from start_factor·lr over total_iters steps, then CosineAnnealingLR to eta_min
      return makeSchedule({ ...base, kind: 'cosine', warmupSteps: linear.total_iters, warmupLr: baseLr * linear.start_factor, minLr: cosine.eta_min });
    }
    default: throw new Error(`no schedule for ${sched.type}`);
  }
}

describe('optimisers and schedules against torch.optim', () => {
  for (const [name, c] of Object.entries(goldens.optim as Record<string, any>)) {
    it(name, () => {
      const o = c.optimizer;
      const params: [string, Parameter][] = [
        ['w', new Parameter([3, 4], () => Float32Array.from(c.init.w), 0)],
        ['b', new Parameter([4], () => Float32Array.from(c.init.b), 0)],
      ];
      const specs = paramSpecs(params, o.param_groups[0].weight_decay);
      expect(specs.map((s) => s.weightDecay)).toEqual(o.param_groups.map((g: any) => g.weight_decay));
      const opt: Optimizer = o.type === 'AdamW'
        ? new AdamW(specs, { beta1: o.betas[0], beta2: o.betas[1], eps: o.eps })
        : new SGD(specs, { momentum: o.momentum, nesterov: o.nesterov, dampening: o.dampening });
      const lr = scheduleFor(c.schedule, o.lr);
      c.steps.forEach((s: any, t: number) => {
        expect(Math.abs(lr(t) - s.lr)).toBeLessThanOrEqual(1e-9 + 1e-6 * s.lr);
        const g: Record<string, Float32Array> = { w: Float32Array.from(s.grad_w), b: Float32Array.from(s.grad_b) };
        opt.step((k) => g[k]!, lr(t));
        expect(relError(params[0]![1].data, s.w), `w after step ${t}`).toBeLessThan(2e-6);
        expect(relError(params[1]![1].data, s.b), `b after step ${t}`).toBeLessThan(2e-6);
      });
    });
  }
});

describe('label-smoothing cross-entropy against F.cross_entropy(label_smoothing=ε)', () => {
  const ls = goldens.label_smoothing;
  for (const c of ls.cases) {
    it(`ε = ${c.smoothing}`, async () => {
      const exe = await compile((logits, labels) => {
        const loss = ops.crossEntropy(logits, labels, { smoothing: c.smoothing });
        return { loss, g: grad(loss, [logits])[0]! };
      }, [{ name: 'logits', shape: ls.logits.shape, dtype: 'float64' }, { name: 'labels', shape: [ls.labels.length], dtype: 'int64' }]);
      const out = await exe.run({ logits: Float64Array.from(ls.logits.data), labels: ls.labels });
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThan(1e-12);
      expect(relError(out.g!.data as Float64Array, c.grad.data ?? c.grad)).toBeLessThan(1e-12);
      await exe.dispose();
    });
  }
});
