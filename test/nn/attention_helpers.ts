/** Running one attention mechanism on host q, k, v: its output and the gradients of Σ out ⊙ w. */
import type { AttentionMechanism } from '../../src/nn/attention/index.js';
import { compile } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';
import { normal, rng } from '../helpers/random.js';

export interface Qkv { q: Float32Array; k: Float32Array; v: Float32Array; w: Float32Array; shape: [number, number, number, number] }

/** Seeded q, k, v, w of shape [B, H, N, D], scaled by `scale`. */
export function randomQkv(shape: [number, number, number, number], seed = 1, scale = 1): Qkv {
  const rand = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const draw = () => Float32Array.from(normal(rand, n), (x) => x * scale);
  return { q: draw(), k: draw(), v: draw(), w: Float32Array.from(normal(rand, n)), shape };
}

export interface MechanismRun { out: Float32Array; attn?: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array }

/** `mode` 'attend': the mechanism's own computation; 'matrix': through its attention matrix. */
export async function runMechanism(mech: AttentionMechanism, x: Qkv, mode: 'attend' | 'matrix' = 'attend', extraWrt: string[] = []): Promise<MechanismRun & { grads: Record<string, Float32Array> }> {
  const [, h, n, d] = x.shape;
  const spec = (name: string) => ({ name, shape: ['batch', h, n, d] as const });
  const exe = await compile((q, k, v, w) => {
    const r = mech.attendWithMatrix(q!, k!, v!, mode === 'matrix');
    return { out: r.out, loss: ops.sum(ops.mul(r.out, w!)), ...(r.attn ? { attn: r.attn } : {}) };
  }, [spec('q'), spec('k'), spec('v'), spec('w')], { grad: { wrt: ['q', 'k', 'v', ...extraWrt] } });
  const res = await exe.run({ q: x.q, k: x.k, v: x.v, w: x.w });
  await exe.dispose();
  const f = (name: string) => res[name]!.data as Float32Array;
  return {
    out: f('out'), attn: res.attn ? f('attn') : undefined, dq: f('grad/q'), dk: f('grad/k'), dv: f('grad/v'),
    grads: Object.fromEntries(extraWrt.map((k) => [k, f(`grad/${k}`)])),
  };
}

/** softmax(q kᵀ/√D) v on the host in float64, [B, H, N, D]. */
export function denseAttention(x: Qkv): Float64Array {
  const [b, h, n, d] = x.shape;
  const out = new Float64Array(b * h * n * d);
  for (let bh = 0; bh < b * h; bh++) {
    const o = bh * n * d;
    for (let i = 0; i < n; i++) {
      const s = new Float64Array(n);
      let m = -Infinity;
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += x.q[o + i * d + e]! * x.k[o + j * d + e]!;
        s[j] = dot / Math.sqrt(d);
        m = Math.max(m, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < n; j++) z += (s[j] = Math.exp(s[j]! - m));
      for (let j = 0; j < n; j++) for (let e = 0; e < d; e++) out[o + i * d + e] += (s[j]! / z) * x.v[o + j * d + e]!;
    }
  }
  return out;
}

export const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
