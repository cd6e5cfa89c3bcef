/**
 * Every differentiable primitive against a central finite difference of its VJP, in a random
 * direction. float64 where ORT has double kernels; the rows marked f32 (Erf, Conv,
 * ConvTranspose, AveragePool have float kernels only) use float32: step 1e-2, tolerance 2e-2
 * relative. float64 rows: step 1e-6, tolerance 1e-6 relative.
 */
import { describe, expect, it } from 'vitest';
import { allPrims, ruleFor } from '../../src/ops/rules.js';
import { compileTraced } from '../../src/runtime/compile.js';
import { normal, size } from '../helpers/random.js';
import { buildRow, rows } from './rows.js';

describe('finite-difference gradient check', () => {
  for (const row of rows) {
    it(row.name, async () => {
      const { traced, dtype, init, floatIdx, cotShape, rand } = buildRow(row);
      expect(traced.graph.nodes.some((n) => n.kind === 'op' && n.prim === row.prim)).toBe(true);
      const exe = await compileTraced(traced);
      const toFloat = (v: number[]) => (dtype === 'float64' ? Float64Array.from(v) : Float32Array.from(v));
      const cotFeed = { data: toFloat(normal(rand, size(cotShape))), shape: cotShape };
      const dir = floatIdx.map((k) => normal(rand, size(row.ins[k]!.shape)));
      const feeds = (shift: number) => Object.fromEntries([['cot', cotFeed], ...init.map((d, k) => {
        const j = floatIdx.indexOf(k);
        const data = j < 0 ? d.data : toFloat((d.data as number[]).map((v, e) => v + shift * dir[j]![e]!));
        return [`x${k}`, { data: data as never, shape: row.ins[k]!.shape }];
      })]);
      const base = await exe.run(feeds(0));
      const analytic = floatIdx.reduce((acc, _, j) => {
        const g = base[`g${j}`]!.data as Float64Array;
        return acc + dir[j]!.reduce((s, v, e) => s + v * g[e]!, 0);
      }, 0);
      const h = row.h ?? (dtype === 'float64' ? 1e-6 : 1e-2);
      const plus = Number((await exe.run(feeds(h))).loss!.data[0]);
      const minus = Number((await exe.run(feeds(-h))).loss!.data[0]);
      const numeric = (plus - minus) / (2 * h);
      const tol = row.tol ?? (dtype === 'float64' ? 1e-6 : 2e-2);
      expect(Math.abs(numeric - analytic)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(analytic)));
      await exe.dispose();
    });
  }

  it('covers every differentiable primitive', () => {
    const covered = new Set(rows.map((r) => r.prim));
    const missing = allPrims().filter((p) => ruleFor(p).vjp !== 'nondiff' && !covered.has(p));
    expect(missing).toEqual([]);
  });
});
