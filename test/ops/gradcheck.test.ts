/**
 * Every differentiable primitive against a central finite difference of its VJP, in a random
 * direction. float64 where ORT has double kernels; the rows marked f32 (Erf, Conv, QuickGelu,
 * ConvTranspose, AveragePool, Resize have float kernels only) use float32: step 1e-2, tolerance
 * 2e-2 relative. float64 rows: step 1e-6, tolerance 1e-6 relative.
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
    // stopGradient's gradient is zero by definition, which no finite difference sees: its own test is below
    const missing = allPrims().filter((p) => ruleFor(p).vjp !== 'nondiff' && p !== 'stopGradient' && !covered.has(p));
    expect(missing).toEqual([]);
  });
});

describe('hand-written VJPs against their decompositions', () => {
  it('gelu matches geluDecomposed in value and gradient', async () => {
    const { compile } = await import('../../src/runtime/compile.js');
    const ops = await import('../../src/ops/index.js');
    const { grad } = await import('../../src/autodiff/grad.js');
    const exe = await compile((x) => {
      const a = ops.gelu(x);
      const b = ops.geluDecomposed(x);
      const [ga] = grad(ops.sum(ops.mul(a, a)), [x]);
      const [gb] = grad(ops.sum(ops.mul(b, b)), [x]);
      return { a, b, ga: ga!, gb: gb! };
    }, [{ name: 'x', shape: [64] }]);
    const x = Float32Array.from({ length: 64 }, (_, i) => (i - 32) / 8);
    const out = await exe.run({ x });
    const { relError } = await import('../helpers/random.js');
    expect(relError(out.a!.data as Float32Array, out.b!.data as Float32Array)).toBeLessThan(1e-6);
    expect(relError(out.ga!.data as Float32Array, out.gb!.data as Float32Array)).toBeLessThan(1e-5);
    await exe.dispose();
  });

  it('gelu gradient stays finite where exp(x²/2) overflows float32: Φ(x) + xφ(x) is 1 far right, 0 far left, ½ at 0', async () => {
    const { compile } = await import('../../src/runtime/compile.js');
    const ops = await import('../../src/ops/index.js');
    const { grad } = await import('../../src/autodiff/grad.js');
    const exe = await compile((x) => ({ g: grad(ops.sum(ops.gelu(x)), [x])[0]! }), [{ name: 'x', shape: [6] }]);
    const out = await exe.run({ x: Float32Array.from([-40, -14, 0, 1, 14, 40]) });
    const g = [...(out.g!.data as Float32Array)];
    // Φ(1) + φ(1) = 0.841345 + 0.241971 (normal tables)
    const expected = [0, 0, 0.5, 1.083316, 1, 1];
    g.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    await exe.dispose();
  });

  it('stopGradient keeps the value and cuts the gradient: d/dx Σ x·stop(x) = x, not 2x', async () => {
    const { compile } = await import('../../src/runtime/compile.js');
    const ops = await import('../../src/ops/index.js');
    const { grad } = await import('../../src/autodiff/grad.js');
    const exe = await compile((x) => {
      const y = ops.stopGradient(x);
      const [g] = grad(ops.sum(ops.mul(x, y)), [x]);
      return { y, g: g! };
    }, [{ name: 'x', shape: [5] }]);
    const x = Float32Array.from([-2, -0.5, 0, 1.5, 3]);
    const out = await exe.run({ x });
    expect(Array.from(out.y!.data as Float32Array)).toEqual(Array.from(x));
    expect(Array.from(out.g!.data as Float32Array)).toEqual(Array.from(x));
    await exe.dispose();
  });

  it('layerNorm matches its decomposition in value and gradient', async () => {
    const { compile } = await import('../../src/runtime/compile.js');
    const ops = await import('../../src/ops/index.js');
    const { grad } = await import('../../src/autodiff/grad.js');
    const exe = await compile((x, s, b) => {
      const fused = ops.layerNorm(x, s, b, 1e-6);
      const c = ops.sub(x, ops.mean(x, -1, true));
      const manual = ops.add(ops.mul(ops.div(c, ops.sqrt(ops.add(ops.mean(ops.mul(c, c), -1, true), 1e-6))), s), b);
      const w = x.graph.constant(Float64Array.from({ length: 24 }, (_, i) => Math.cos(i)), [4, 6], 'float64');
      const gf = grad(ops.sum(ops.mul(fused, w)), [x, s, b]);
      const gm = grad(ops.sum(ops.mul(manual, w)), [x, s, b]);
      return { fused, manual, ...Object.fromEntries(gf.map((g, i) => [`f${i}`, g])), ...Object.fromEntries(gm.map((g, i) => [`m${i}`, g])) };
    }, [{ name: 'x', shape: [4, 6], dtype: 'float64' }, { name: 's', shape: [6], dtype: 'float64' }, { name: 'b', shape: [6], dtype: 'float64' }]);
    const out = await exe.run({
      x: Float64Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.3)),
      s: Float64Array.from({ length: 6 }, (_, i) => 1 + i / 10),
      b: Float64Array.from({ length: 6 }, (_, i) => i / 7),
    });
    const { relError } = await import('../helpers/random.js');
    expect(relError(out.fused!.data as Float64Array, out.manual!.data as Float64Array)).toBeLessThan(1e-12);
    for (let i = 0; i < 3; i++) expect(relError(out[`f${i}`]!.data as Float64Array, out[`m${i}`]!.data as Float64Array)).toBeLessThan(1e-10);
    await exe.dispose();
  });
});

describe('primitives against their decompositions', () => {
  it('batchNorm matches its decomposition in value and gradient', async () => {
    const { compile } = await import('../../src/runtime/compile.js');
    const ops = await import('../../src/ops/index.js');
    const { grad } = await import('../../src/autodiff/grad.js');
    const exe = await compile((x, s, b) => {
      const fused = ops.batchNorm(x, s, b, 1e-5);
      const { centered, variance } = ops.batchStatistics(x);
      const manual = ops.add(ops.mul(ops.div(centered, ops.sqrt(ops.add(variance, 1e-5))), ops.reshape(s, [3, 1, 1])), ops.reshape(b, [3, 1, 1]));
      const w = x.graph.constant(Float64Array.from({ length: 72 }, (_, i) => Math.cos(i)), [4, 3, 2, 3], 'float64');
      const gf = grad(ops.sum(ops.mul(fused, w)), [x, s, b]);
      const gm = grad(ops.sum(ops.mul(manual, w)), [x, s, b]);
      return { fused, manual, ...Object.fromEntries(gf.map((g, i) => [`f${i}`, g])), ...Object.fromEntries(gm.map((g, i) => [`m${i}`, g])) };
    }, [{ name: 'x', shape: [4, 3, 2, 3], dtype: 'float64' }, { name: 's', shape: [3], dtype: 'float64' }, { name: 'b', shape: [3], dtype: 'float64' }]);
    const out = await exe.run({
      x: Float64Array.from({ length: 72 }, (_, i) => 3 * Math.sin(i * 1.3) + 1),
      s: Float64Array.from([1.2, 0.7, -0.4]),
      b: Float64Array.from([0.1, -0.2, 0.3]),
    });
    const { relError } = await import('../helpers/random.js');
    expect(relError(out.fused!.data as Float64Array, out.manual!.data as Float64Array)).toBeLessThan(1e-12);
    for (let i = 0; i < 3; i++) expect(relError(out[`f${i}`]!.data as Float64Array, out[`m${i}`]!.data as Float64Array)).toBeLessThan(1e-10);
    await exe.dispose();
  });

  it("resizeBilinear's Resize node matches the interpolation matrices its VJP transposes", async () => {
    const { compile } = await import('../../src/runtime/compile.js');
    const ops = await import('../../src/ops/index.js');
    const { relError } = await import('../helpers/random.js');
    for (const [size, alignCorners] of [[[9, 4], false], [[3, 11], false], [[7, 2], true], [[1, 1], true]] as const) {
      const [h, w] = [5, 6];
      const exe = await compile((x) => {
        const ah = x.graph.constant(Float32Array.from(ops.interpolationMatrix(h, size[0], alignCorners)), [size[0], h], 'float32');
        const awT = x.graph.constant(Float32Array.from(ops.interpolationMatrix(w, size[1], alignCorners)), [size[1], w], 'float32');
        return { resized: ops.resizeBilinear(x, size, alignCorners), matrices: ops.matmul(ops.matmul(ah, x), ops.mT(awT)) };
      }, [{ name: 'x', shape: ['batch', 2, h, w] }]);
      const out = await exe.run({ x: Float32Array.from({ length: 3 * 2 * h * w }, (_, i) => Math.sin(i * 0.7) * 3) });
      expect(relError(out.resized!.data as Float32Array, out.matrices!.data as Float32Array), `${size} ${alignCorners}`).toBeLessThan(1e-6);
      await exe.dispose();
    }
  });
});

describe('cotangents of slices', () => {
  // x [2, 6, 3] cut along axis 1; each piece is used by a different function, so the pieces'
  // cotangents are zero-padded slices that grad combines. Reference: the analytic gradient.
  const cases: { name: string; cuts: [number, number][]; concat: boolean }[] = [
    { name: 'pieces that tile the axis become one Concat', cuts: [[2, 6], [0, 1], [1, 2]], concat: true },
    { name: 'pieces with a gap are added', cuts: [[0, 2], [3, 6]], concat: false },
    { name: 'overlapping pieces are added', cuts: [[0, 4], [2, 6]], concat: false },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { compile } = await import('../../src/runtime/compile.js');
      const ops = await import('../../src/ops/index.js');
      const { grad } = await import('../../src/autodiff/grad.js');
      const exe = await compile((x) => {
        // piece k contributes sum((k + 1) · piece²), so d/dx = 2 (k + 1) x summed over the pieces covering x
        const loss = c.cuts.map(([s, e], k) => {
          const piece = ops.slice(x, [1], [s], [e]);
          return ops.mul(ops.sum(ops.mul(piece, piece)), k + 1);
        }).reduce((a, b) => ops.add(a, b));
        return { loss, g: grad(loss, [x])[0]! };
      }, [{ name: 'x', shape: [2, 6, 3], dtype: 'float64' }]);
      const { decodeModel } = await import('../../src/onnx/proto.js');
      const nodeOps = (decodeModel(exe.onnx).graph!.node ?? []).map((n) => n.opType);
      expect(nodeOps.includes('Concat')).toBe(c.concat);
      expect(nodeOps.includes('Pad')).toBe(!c.concat);
      const x = Float64Array.from({ length: 36 }, (_, i) => Math.sin(i));
      const g = (await exe.run({ x })).g!.data as Float64Array;
      for (let i = 0; i < 36; i++) {
        const j = Math.floor(i / 3) % 6;
        const weight = c.cuts.reduce((w, [s, e], k) => w + (j >= s && j < e ? 2 * (k + 1) : 0), 0);
        expect(g[i]).toBeCloseTo(weight * x[i]!, 12);
      }
      await exe.dispose();
    });
  }
});

describe('reshape chains', () => {
  it('a gradient with respect to a reshape that is reshaped again does not vanish', async () => {
    const { compile } = await import('../../src/runtime/compile.js');
    const ops = await import('../../src/ops/index.js');
    const { grad } = await import('../../src/autodiff/grad.js');
    const weights = Float64Array.from({ length: 12 }, (_, i) => i - 5.5);
    const exe = await compile((x) => {
      const r = ops.reshape(ops.mul(x, 2), [3, 4]);
      const loss = ops.sum(ops.mul(ops.reshape(r, [12]), x.graph.constant(weights, [12], 'float64')));
      return { g: grad(loss, [r])[0]! };
    }, [{ name: 'x', shape: [2, 6], dtype: 'float64' }]);
    const g = (await exe.run({ x: new Float64Array(12).fill(1) })).g!;
    expect(g.shape).toEqual([3, 4]);
    expect([...(g.data as Float64Array)]).toEqual([...weights]);
    await exe.dispose();
  });

  it('is emitted as one Reshape node', async () => {
    const { trace } = await import('../../src/runtime/compile.js');
    const { emitModel } = await import('../../src/onnx/emit.js');
    const { decodeModel } = await import('../../src/onnx/proto.js');
    const ops = await import('../../src/ops/index.js');
    const traced = trace((x) => ({ y: ops.add(ops.reshape(ops.reshape(x, [6, 2]), [3, 4]), 1) }), [{ name: 'x', shape: [2, 6] }]);
    const emitted = emitModel(traced.graph, traced.outputs as Record<string, never>);
    const nodeOps = (decodeModel(emitted.bytes).graph!.node ?? []).map((n) => n.opType);
    expect(nodeOps.filter((o) => o === 'Reshape')).toHaveLength(1);
  });
});

describe('gradients with respect to intermediate tensors', () => {
  it("an op node's combined cotangent is built once, whether or not it is also returned", async () => {
    const { trace } = await import('../../src/runtime/compile.js');
    const { emitModel } = await import('../../src/onnx/emit.js');
    const { decodeModel } = await import('../../src/onnx/proto.js');
    const ops = await import('../../src/ops/index.js');
    const { grad } = await import('../../src/autodiff/grad.js');
    const adds = (alsoY: boolean) => {
      const traced = trace((x) => {
        const y = ops.mul(x, 2); // three contributions: y·y (twice) and y
        const loss = ops.add(ops.sum(ops.mul(y, y)), ops.sum(y));
        const [gx, gy] = grad(loss, [x, y]);
        return Object.fromEntries(alsoY ? [['gx', gx!], ['gy', gy!]] : [['gx', gx!]]);
      }, [{ name: 'x', shape: [3], dtype: 'float64' }]);
      const emitted = emitModel(traced.graph, traced.outputs as Record<string, never>);
      return (decodeModel(emitted.bytes).graph!.node ?? []).filter((n) => n.opType === 'Add').length;
    };
    expect(adds(true)).toBe(adds(false));
  });
});
