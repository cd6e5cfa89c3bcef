/**
 * Attention maps as pure functions over host matrices (row-major Float32Array, one image).
 *
 * - Attention rollout: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
 *   https://arxiv.org/abs/2005.00928, with head fusion and discarding as in the widely used
 *   reference implementation (jacobgil/vit-explain).
 * - Gradient-weighted rollout: Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability
 *   for Interpreting Bi-Modal and Encoder-Decoder Transformers", https://arxiv.org/abs/2103.15679.
 *
 * Shapes: a layer's attention is [H, T, T] (T = prefix tokens + patches); a fused or rolled-out
 * matrix is [T, T]. Row i says how much token i draws from each token j.
 */

export type HeadFusion = 'mean' | 'max' | 'min';

/**
 * Which row of a [T, T] map explains the prediction: the class token's row (token pooling, and
 * DeiT, whose distillation head also reads a prefix token), or the mean of the patch tokens' rows
 * (avg pooling, whose head sees the mean of the patch tokens).
 */
export type MapSource = 'cls' | 'patch-mean';

export interface RolloutOptions {
  /** How one layer's heads become one matrix (default 'mean'). */
  headFusion?: HeadFusion;
  /**
   * Fraction in [0, 1) of the fused matrix's T·T entries to zero, lowest first, before the
   * identity is added. As in vit-explain, entry [0, 0] (the class token attending to itself) is
   * kept even when it is among the lowest, so then one entry fewer is zeroed.
   */
  discardRatio?: number;
}

/** [H, T, T] → [T, T]: mean, max or min over the heads. */
export function fuseHeads(attn: Float32Array, heads: number, tokens: number, fusion: HeadFusion = 'mean'): Float32Array {
  const tt = tokens * tokens;
  if (attn.length !== heads * tt) throw new RangeError(`fuseHeads: expected ${heads}×${tokens}×${tokens} values, got ${attn.length}`);
  const out = attn.slice(0, tt);
  for (let h = 1; h < heads; h++) {
    const head = attn.subarray(h * tt, (h + 1) * tt);
    if (fusion === 'mean') for (let i = 0; i < tt; i++) out[i]! += head[i]!;
    else if (fusion === 'max') for (let i = 0; i < tt; i++) out[i] = Math.max(out[i]!, head[i]!);
    else for (let i = 0; i < tt; i++) out[i] = Math.min(out[i]!, head[i]!);
  }
  if (fusion === 'mean') for (let i = 0; i < tt; i++) out[i]! /= heads;
  return out;
}

/**
 * Zeros the ⌊ratio·T²⌋ lowest entries of a [T, T] matrix (ties: lower flat index first), keeping
 * entry [0, 0] (vit-explain: `indices = indices[indices != 0]`). Returns a new matrix.
 */
export function discardLowest(a: Float32Array, tokens: number, ratio: number): Float32Array {
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`discard ratio must be in [0, 1), got ${ratio}`);
  const out = a.slice();
  const k = Math.floor(ratio * tokens * tokens);
  if (k === 0) return out;
  const order = Array.from({ length: a.length }, (_, i) => i).sort((i, j) => a[i]! - a[j]! || i - j);
  for (let r = 0; r < k; r++) if (order[r] !== 0) out[order[r]!] = 0;
  return out;
}

/** C = A·B for [n, n] matrices. */
export function matmulSquare(a: Float32Array, b: Float32Array, n: number): Float32Array {
  const c = new Float32Array(n * n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      const bk = k * n;
      for (let j = 0; j < n; j++) row[j]! += aik * b[bk + j]!;
    }
    c.set(row, i * n);
  }
  return c;
}

export function identity(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

/** (A + I) / 2 with each row then divided by its sum: the residual stream as attention. */
export function addIdentityAndNormalise(a: Float32Array, tokens: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < tokens; i++) {
    let s = 0;
    for (let j = 0; j < tokens; j++) s += (a[i * tokens + j]! + (i === j ? 1 : 0)) / 2;
    for (let j = 0; j < tokens; j++) out[i * tokens + j] = (a[i * tokens + j]! + (i === j ? 1 : 0)) / 2 / s;
  }
  return out;
}

/**
 * Attention rollout: per layer fuse the heads, discard the lowest entries, add the identity and
 * row-normalise (Ā = norm((A + I)/2)), then multiply through the layers, R_l = Ā_l · R_{l−1}
 * from R_0 = I. Returns R after every layer (the last one is the rollout).
 *
 * vit-explain divides by `a.sum(dim=-1)` broadcast over the last axis, i.e. by column sums of a
 * row-sum vector; we normalise rows, as the paper intends.
 */
export function attentionRollout(layers: readonly Float32Array[], heads: number, tokens: number, opts: RolloutOptions = {}): Float32Array[] {
  let r = identity(tokens);
  return layers.map((attn) => {
    let fused = fuseHeads(attn, heads, tokens, opts.headFusion ?? 'mean');
    if (opts.discardRatio) fused = discardLowest(fused, tokens, opts.discardRatio);
    r = matmulSquare(addIdentityAndNormalise(fused, tokens), r, tokens);
    return r;
  });
}

/**
 * Chefer et al.'s relevance for self-attention: Ā_l = E_h[(∇A_l ⊙ A_l)⁺] (the gradient of the
 * explained class logit with respect to the attention probabilities), R ← R + Ā_l · R from R = I.
 * Returns R after every layer.
 */
export function gradientRollout(attns: readonly Float32Array[], grads: readonly Float32Array[], heads: number, tokens: number): Float32Array[] {
  if (attns.length !== grads.length) throw new RangeError(`gradientRollout: ${attns.length} attention layers but ${grads.length} gradients`);
  const tt = tokens * tokens;
  let r = identity(tokens);
  return attns.map((a, l) => {
    const g = grads[l]!;
    const cam = new Float32Array(tt);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < tt; i++) cam[i]! += Math.max(0, g[h * tt + i]! * a[h * tt + i]!);
    }
    for (let i = 0; i < tt; i++) cam[i]! /= heads;
    const add = matmulSquare(cam, r, tokens);
    const next = r.slice();
    for (let i = 0; i < tt; i++) next[i]! += add[i]!;
    r = next;
    return r;
  });
}

/**
 * The explaining row of a [T, T] map, over the patch tokens only: [N] with N = T − prefix. For
 * 'cls' that is row 0 (the class token); for 'patch-mean' the mean of rows prefix…T−1.
 */
export function patchRow(m: Float32Array, tokens: number, prefix: number, source: MapSource): Float32Array {
  const n = tokens - prefix;
  if (source === 'cls') return m.slice(prefix, tokens);
  const out = new Float32Array(n);
  for (let i = prefix; i < tokens; i++) for (let j = 0; j < n; j++) out[j]! += m[i * tokens + prefix + j]!;
  for (let j = 0; j < n; j++) out[j]! /= n;
  return out;
}

/** One image's slice of a batched [B, ...] host array. */
export function sampleOf(batched: Float32Array, b: number, perSample: number): Float32Array {
  return batched.subarray(b * perSample, (b + 1) * perSample);
}
