/**
 * The WebAssembly SIMD AdamW update against the textbook update written out here in float64,
 * for tensor sizes that are not whole 4-lane vectors (the padding must neither leak into the
 * next tensor nor change the last values), over several steps with weight decay and LR scale.
 */
import { describe, expect, it } from 'vitest';
import { Parameter } from '../../src/nn/module.js';
import { AdamW, type ParamSpec } from '../../src/optim/adamw.js';
import { AdamWKernel } from '../../src/optim/adamw_kernel.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

describe('AdamW WebAssembly kernel', () => {
  it('is available in this runtime (Node has WebAssembly SIMD)', () => {
    expect(AdamWKernel.create([5])).toBeDefined();
  });

  it('declines moments beyond a 32-bit memory (the optimiser then uses its JavaScript loop)', () => {
    expect(AdamWKernel.create([2 ** 29, 2 ** 29])).toBeUndefined();
  });

  it.each([['the SIMD kernel', true], ['the JavaScript loop (its fallback)', false]])('%s matches a float64 AdamW on sizes 1, 3, 5, 17 over 6 steps', (_, simd) => {
    const sizes = [1, 3, 5, 17];
    const rand = lcg(7);
    const init = sizes.map((n) => Float64Array.from({ length: n }, rand));
    const specs: ParamSpec[] = sizes.map((n, k) => ({
      name: `p${k}`, param: new Parameter([n], () => Float32Array.from(init[k]!), 0), weightDecay: k % 2 ? 0.05 : 0, lrScale: k === 2 ? 0.5 : undefined,
    }));
    const [b1, b2, eps] = [0.9, 0.999, 1e-8];
    const opt = new AdamW(specs, { beta1: b1, beta2: b2, eps, simd });
    expect(opt['kernel'] !== undefined).toBe(simd);
    const ref = init.map((a) => Float64Array.from(a));
    const m = sizes.map((n) => new Float64Array(n));
    const v = sizes.map((n) => new Float64Array(n));
    for (let t = 1; t <= 6; t++) {
      const lr = 1e-2 / t;
      const grads = sizes.map((n) => Float32Array.from({ length: n }, rand));
      opt.step((name) => grads[Number(name.slice(1))], lr);
      sizes.forEach((n, k) => {
        const rate = lr * (specs[k]!.lrScale ?? 1);
        for (let i = 0; i < n; i++) {
          const g = grads[k]![i]!;
          ref[k]![i]! *= 1 - rate * specs[k]!.weightDecay;
          m[k]![i] = b1 * m[k]![i]! + (1 - b1) * g;
          v[k]![i] = b2 * v[k]![i]! + (1 - b2) * g * g;
          const mHat = m[k]![i]! / (1 - b1 ** t);
          const vHat = v[k]![i]! / (1 - b2 ** t);
          ref[k]![i]! -= (rate * mHat) / (Math.sqrt(vHat) + eps);
        }
      });
    }
    sizes.forEach((n, k) => {
      const got = specs[k]!.param.data;
      for (let i = 0; i < n; i++) expect(Math.abs(got[i]! - ref[k]![i]!), `p${k}[${i}]`).toBeLessThan(1e-6);
      for (let i = 0; i < n; i++) expect(Math.abs(opt.m[k]![i]! - m[k]![i]!)).toBeLessThan(1e-6);
      for (let i = 0; i < n; i++) expect(Math.abs(opt.v[k]![i]! - v[k]![i]!)).toBeLessThan(1e-7);
    });
    // the parameters moved: a kernel that did nothing would fail above, this says by how much
    expect(Math.abs(specs[3]!.param.data[0]! - init[3]![0]!)).toBeGreaterThan(1e-3);
  });
});
