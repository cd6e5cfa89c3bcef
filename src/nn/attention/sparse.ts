/**
 * BigBird-style block-sparse attention — "Big Bird: Transformers for Longer Sequences" (Zaheer
 * et al. 2020, https://arxiv.org/abs/2007.14062). The patch tokens are cut into blocks of
 * `blockSize` (the last one padded; padded keys are masked, padded queries dropped). Each query
 * block attends, by an exact softmax over the union, to
 *   - the global blocks: the first `numGlobalBlocks` blocks, and the prefix tokens (class,
 *     distillation) as ETC-style global tokens;
 *   - its window: the block itself and its two neighbours (BigBird's 3-block sliding window);
 *   - `numRandomBlocks` random blocks, distinct from those, drawn per head and per block.
 * A block whose window overlaps a global block or the sequence's edge gets as many extra random
 * blocks, so every block attends exactly K = min(blocks, global + 3 + random) blocks: one
 * fixed-size gather of keys and values per layer, O(N·K·blockSize·D) work — linear in N for a
 * fixed block size. Global queries (prefix tokens and the global blocks' tokens) attend to every
 * token, as BigBird's global tokens do: O(N) rows of O(N) more.
 *
 * The random pattern is part of the architecture: drawn once per layer from a fixed salt and the
 * module path (not the run seed, so fine-tuning with another seed keeps it), the same in
 * training, eval and export — as the original TF implementation fixes it when the graph is built
 * (Hugging Face redraws it every training step and uses none in eval). With K = all blocks the
 * result is dense softmax attention.
 */
import type { Tensor } from '../../ir/tensor.js';
import { add, concat, gather, matmul, mT, mul, pad, reshape, slice, softmax } from '../../ops/index.js';
import { Random } from '../../random.js';
import { AttentionMechanism, MASKED, overBlocks, softmaxScores, stateSeed, tokens, type MechanismContext } from './mechanism.js';

const PATTERN_SALT = 0xb16b;
/** BigBird's sliding window: the block and one neighbour on each side. */
const WINDOW = 1;

export interface SparseOptions {
  blockSize?: number;
  numRandomBlocks?: number;
  numGlobalBlocks?: number;
}

/** The blocks each non-global query block attends, per head: [H][blocks − global][K], sorted. */
export type SparsePattern = number[][][];

export class SparseAttention extends AttentionMechanism {
  readonly type = 'sparse';
  readonly blockSize: number;
  readonly numRandomBlocks: number;
  readonly numGlobalBlocks: number;
  private fixedPattern?: SparsePattern;

  constructor(ctx: MechanismContext, { blockSize = 16, numRandomBlocks = 3, numGlobalBlocks = 1 }: SparseOptions = {}) {
    super(ctx);
    this.blockSize = blockSize;
    this.numRandomBlocks = numRandomBlocks;
    this.numGlobalBlocks = numGlobalBlocks;
  }

  private geometry(n: number) {
    const layout = this.layoutFor(n);
    const patches = n - layout.prefix;
    const b = this.blockSize;
    const blocks = Math.ceil(patches / b);
    const global = Math.min(this.numGlobalBlocks, blocks);
    const k = Math.min(blocks, global + 2 * WINDOW + 1 + this.numRandomBlocks);
    return { layout, patches, b, blocks, global, k };
  }

  /** The pattern for N tokens: drawn from the module path, or the one set by `setPattern` (tests feed a reference's). */
  pattern(n: number): SparsePattern {
    const { blocks, global, k } = this.geometry(n);
    if (this.fixedPattern) return this.fixedPattern;
    const rng = new Random(stateSeed(0, PATTERN_SALT, blocks, this.path));
    return Array.from({ length: this.ctx.numHeads }, () => Array.from({ length: blocks - global }, (_, j) => {
      const i = global + j;
      const base = new Set<number>();
      for (let s = 0; s < global; s++) base.add(s);
      for (let s = Math.max(0, i - WINDOW); s <= Math.min(blocks - 1, i + WINDOW); s++) base.add(s);
      const rest = Array.from({ length: blocks }, (_, s) => s).filter((s) => !base.has(s));
      for (let r = rest.length - 1; r > 0; r--) {
        const t = rng.int(r + 1);
        [rest[r], rest[t]] = [rest[t]!, rest[r]!];
      }
      return [...base, ...rest.slice(0, Math.max(0, k - base.size))].sort((a, c) => a - c);
    }));
  }

  /** Fixes the random pattern (e.g. to a reference implementation's); it must fit the layer's geometry. */
  setPattern(p: SparsePattern): void {
    this.fixedPattern = p;
  }

  attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const n = q.shape[2] as number;
    const h = this.ctx.numHeads;
    const d = q.shape[3] as number;
    const { layout, patches, b, blocks, global, k: kb } = this.geometry(n);
    const p = layout.prefix;
    const denseRows = p + Math.min(global * b, patches);
    // global queries: every key
    const dense = denseRows > 0 ? matmul(softmaxScores(tokens(q, 0, denseRows), k), v) : undefined; // [B, H, P + g·b, D]
    const sparseBlocks = blocks - global;
    if (sparseBlocks === 0) return dense!;
    const g = q.graph;
    const padded = (x: Tensor) => pad(tokens(x, p, n), [0, 0, 0, 0, 0, 0, blocks * b - patches, 0]); // [B, H, nb·b, D]
    const pattern = this.pattern(n);
    if (pattern.length !== h || pattern.some((rows) => rows.length !== sparseBlocks || rows.some((r) => r.length !== kb))) {
      throw new RangeError(`${this.path}: a sparse pattern must be [${h}][${sparseBlocks}][${kb}] for ${n} tokens`);
    }
    // flat block ids h·nb + s, and the additive mask of padded keys (prefix keys first)
    const ids = new BigInt64Array(h * sparseBlocks * kb);
    const mask = new Float32Array(h * sparseBlocks * (p + kb * b));
    pattern.forEach((rows, hh) => rows.forEach((slots, j) => slots.forEach((s, t) => {
      ids[(hh * sparseBlocks + j) * kb + t] = BigInt(hh * blocks + s);
      for (let e = 0; e < b; e++) if (s * b + e >= patches) mask[(hh * sparseBlocks + j) * (p + kb * b) + p + t * b + e] = MASKED;
    })));
    const index = g.constant(ids, [h, sparseBlocks, kb], 'int64');
    const maskT = g.constant(q.dtype === 'float64' ? Float64Array.from(mask) : mask, [h, sparseBlocks, 1, p + kb * b], q.dtype);
    const gathered = (x: Tensor) => reshape(gather(reshape(padded(x), [-1, h * blocks, b, d]), index, 1), [-1, h, sparseBlocks, kb * b, d]); // [B, H, nb', K·b, D]
    const qBlocks = slice(reshape(padded(q), [-1, h, blocks, b, d]), [2], [global], [blocks]); // [B, H, nb', b, D]
    const qs = mul(qBlocks, d ** -0.5);
    const kg = gathered(k);
    const vg = gathered(v);
    const blockScores = matmul(qs, mT(kg)); // [B, H, nb', b, K·b]
    const logits = p > 0 ? concat([matmul(qs, mT(overBlocks(tokens(k, 0, p)))), blockScores], -1) : blockScores; // [B, H, nb', b, P + K·b]
    const probs = softmax(add(logits, maskT), -1);
    let out = matmul(slice(probs, [4], [p], [p + kb * b]), vg); // [B, H, nb', b, D]
    if (p > 0) out = add(out, matmul(slice(probs, [4], [0], [p]), overBlocks(tokens(v, 0, p))));
    const rows = slice(reshape(out, [-1, h, sparseBlocks * b, d]), [2], [0], [patches - global * b]); // [B, H, M − g·b, D]
    return dense ? concat([dense, rows], 2) : rows;
  }

  /** Dense softmax under the block pattern: a [H, nb+1, nb+1] block mask spread to tokens by two gathers. */
  matrix(q: Tensor, k: Tensor): Tensor {
    const n = q.shape[2] as number;
    const h = this.ctx.numHeads;
    const { layout, b, blocks, global } = this.geometry(n);
    const p = layout.prefix;
    const pattern = this.pattern(n);
    const side = blocks + 1; // block 0: the prefix tokens
    const allowed = new Float32Array(h * side * side).fill(MASKED);
    for (let hh = 0; hh < h; hh++) {
      for (let a = 0; a < side; a++) {
        for (let c = 0; c < side; c++) {
          const open = a === 0 || c === 0 || a - 1 < global || pattern[hh]![a - 1 - global]!.includes(c - 1);
          if (open) allowed[(hh * side + a) * side + c] = 0;
        }
      }
    }
    const g = q.graph;
    const blockOf = g.constant(BigInt64Array.from({ length: n }, (_, i) => BigInt(i < p ? 0 : 1 + Math.floor((i - p) / b))), [n], 'int64');
    const blockMask = g.constant(q.dtype === 'float64' ? Float64Array.from(allowed) : allowed, [h, side, side], q.dtype);
    const mask = gather(gather(blockMask, blockOf, 1), blockOf, 2); // [H, N, N]
    return softmaxScores(q, k, mask);
  }
}
