/**
 * Axial attention — "Axial-DeepLab: Stand-Alone Axial-Attention for Panoptic Segmentation" (Wang
 * et al. 2020, https://arxiv.org/abs/2003.07853), after "Axial Attention in Multidimensional
 * Transformers" (Ho et al. 2019, https://arxiv.org/abs/1912.12180): attention along one axis of
 * the patch grid at a time, O(N (H + W) D) instead of O(N² D).
 *
 * One ViT attention layer here is a row pass then a column pass, with the block's one set of
 * q, k, v (Axial-DeepLab gives each pass its own qkv conv and runs height first; a ViT block
 * has one attn.qkv, so both passes share q and k, and the column pass attends over the row
 * pass's outputs — each patch reaches the whole grid in one layer):
 *   row pass:    u = softmax over the patch's row (and the prefix keys) of q kᵀ/√D, applied to v;
 *   column pass: y = softmax over the patch's column (and the prefix keys) of q kᵀ/√D, applied to u.
 * The prefix tokens (class, distillation) have no place on the grid; the sources have none. Here
 * they are global tokens: they attend to every token with one dense softmax row (O(N)), and every
 * patch attends to them in both passes, the prefix keys carrying their own values v.
 *
 * Relative positional terms (`relPos`, Axial-DeepLab's): along each axis of length L, learned
 * r^q, r^k, r^v [2L − 1, D] per axis, shared by the heads (as Axial-DeepLab shares them across
 * groups), indexed by key position − query position + L − 1; the logits gain q·r^q + k·r^k (all
 * three terms scaled by 1/√D here, where Axial-DeepLab normalises with BatchNorm) and each
 * attended patch adds r^v to its value. They are `attn.axial.relative_width` and
 * `attn.axial.relative_height` [3, 2L − 1, D] (q, k, v terms), initialised N(0, 1/D) as
 * Axial-DeepLab does. Without them the block's keys are exactly attn.qkv and attn.proj.
 *
 * The implied matrix (for maps) is A_col · A_row for patch rows and the dense softmax row for
 * prefix rows; when maps are asked for the output is computed as A v plus the r^v terms.
 */
import type { Tensor } from '../../ir/tensor.js';
import { add, concat, gather, matmul, mT, mul, reshape, slice, softmax, transpose, unsqueeze } from '../../ops/index.js';
import { Random } from '../../random.js';
import type { Parameter } from '../module.js';
import { AttentionMechanism, markMechanismState, overBlocks, softmaxScores, stateSeed, tokens, type MechanismContext } from './mechanism.js';

const REL_SALT = 0xa71a;

/** r^q, r^k, r^v of one axis, each [2L − 1, D]. */
interface AxisTerms { rq: Tensor; rk: Tensor; rv: Tensor; length: number }

/** One axis's pass: probabilities [B, H, A, L, P + L] (prefix keys first) and the output [B, H, A, L, D]. */
interface Pass { probs: Tensor; out: Tensor; posValue?: Tensor }

export class AxialAttention extends AttentionMechanism {
  readonly type = 'axial';
  private readonly relWidth?: Parameter;
  private readonly relHeight?: Parameter;

  constructor(ctx: MechanismContext, readonly relPos = false) {
    super(ctx);
    if (!ctx.layout) throw new RangeError('axial attention needs the token grid of its model (a TokenLayout)');
    if (relPos) {
      const [gh, gw] = ctx.layout.grid;
      const d = ctx.headDim;
      // drawn from the module path, not the model's parameter stream: the other weights stay
      // those of the same seed without relative terms
      const init = (salt: number) => (n: number) => new Random(stateSeed(ctx.seed, REL_SALT, salt, this.path)).fillNormal(new Float32Array(n), d ** -0.5);
      this.relWidth = this.addParam('relative_width', [3, 2 * gw - 1, d], init(0));
      this.relHeight = this.addParam('relative_height', [3, 2 * gh - 1, d], init(1));
      markMechanismState(this.relWidth);
      markMechanismState(this.relHeight);
    }
  }

  private terms(q: Tensor, name: 'relative_width' | 'relative_height', length: number): AxisTerms | undefined {
    if (!this.relPos) return undefined;
    const r = this.p(q.graph, name); // [3, 2L − 1, D]
    const part = (i: number) => reshape(slice(r, [0], [i], [i + 1]), [2 * length - 1, this.ctx.headDim]);
    return { rq: part(0), rk: part(1), rv: part(2), length };
  }

  /** Both passes over the patches [B, H, gh, gw, D]; the prefix keys and values [B, H, P, D]. */
  private passes(q: Tensor, k: Tensor, v: Tensor) {
    const n = q.shape[2] as number;
    const { prefix: p, grid: [gh, gw] } = this.layoutFor(n);
    const d = this.ctx.headDim;
    const h = this.ctx.numHeads;
    const grid = (x: Tensor) => reshape(tokens(x, p, n), [-1, h, gh, gw, d]); // [B, H, gh, gw, D]
    const byColumn = (x: Tensor) => transpose(x, [0, 1, 3, 2, 4]); // [B, H, gw, gh, D]
    const pre = p > 0 ? { k: tokens(k, 0, p), v: tokens(v, 0, p) } : undefined;
    const [qg, kg] = [grid(q), grid(k)];
    const row = lineAttention(qg, kg, grid(v), pre, this.terms(q, 'relative_width', gw));
    const col = lineAttention(byColumn(qg), byColumn(kg), byColumn(row.out), pre, this.terms(q, 'relative_height', gh));
    const patches = reshape(byColumn(col.out), [-1, h, gh * gw, d]); // [B, H, gh·gw, D]
    return { n, p, gh, gw, row, col, patches };
  }

  attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const { p, patches } = this.passes(q, k, v);
    if (p === 0) return patches;
    return concat([matmul(softmaxScores(tokens(q, 0, p), k), v), patches], 2); // prefix rows: dense
  }

  matrix(q: Tensor, k: Tensor): Tensor {
    // the probabilities do not depend on v; any tensor of v's shape gives them
    return this.composed(q, k, this.passes(q, k, q)).attn;
  }

  override attendWithMatrix(q: Tensor, k: Tensor, v: Tensor, withMatrix: boolean): { out: Tensor; attn?: Tensor } {
    if (!withMatrix) return { out: this.attend(q, k, v) };
    const passes = this.passes(q, k, v);
    const { attn, aCol } = this.composed(q, k, passes);
    let out = matmul(attn, v);
    if (this.relPos) {
      // u = A_row v + E_row, y = A_col u + E_col: the positional value terms ride along
      const { p, gh, gw, row, col } = passes;
      const d = this.ctx.headDim;
      const h = this.ctx.numHeads;
      const asTokens = (e: Tensor, byCol: boolean) => {
        const t = reshape(byCol ? transpose(e, [0, 1, 3, 2, 4]) : e, [-1, h, gh * gw, d]); // [B, H, M, D]
        return p > 0 ? concat([mul(tokens(v, 0, p), 0), t], 2) : t; // prefix rows: none
      };
      out = add(out, add(matmul(aCol, asTokens(row.posValue!, false)), asTokens(col.posValue!, true)));
    }
    return { out, attn };
  }

  /** A = A_col · A_row over the patch rows, the dense softmax rows for the prefix. */
  private composed(q: Tensor, k: Tensor, { n, p, gh, gw, row, col }: ReturnType<AxialAttention['passes']>): { attn: Tensor; aCol: Tensor } {
    const aRow = spread(row.probs, n, p, (y, x) => y * gw + x, (i, j) => (sameRow(i, j, gw) ? (j % gw) : -1), gh, gw);
    const aCol = spread(col.probs, n, p, (y, x) => x * gh + y, (i, j) => (j % gw === i % gw ? Math.floor(j / gw) : -1), gh, gw);
    const patches = tokens(matmul(aCol, aRow), p, n); // [B, H, M, N]
    const attn = p > 0 ? concat([softmaxScores(tokens(q, 0, p), k), patches], 2) : patches;
    return { attn, aCol };
  }
}

const sameRow = (i: number, j: number, gw: number) => Math.floor(i / gw) === Math.floor(j / gw);

/**
 * Softmax attention along the last-but-one axis of qL, kL, vL [B, H, A, L, D] (A independent
 * lines of length L), each query also seeing the prefix keys [B, H, P, D]; with relative terms.
 */
function lineAttention(qL: Tensor, kL: Tensor, vL: Tensor, pre: { k: Tensor; v: Tensor } | undefined, rel?: AxisTerms): Pass {
  const d = qL.shape[4] as number;
  const qs = mul(qL, d ** -0.5);
  let logits = matmul(qs, mT(kL)); // [B, H, A, L, L]
  let tables: { rv: Tensor } | undefined;
  if (rel) {
    const l = rel.length;
    const offsets = (transposed: boolean) => qL.graph.constant(Int32Array.from({ length: l * l }, (_, e) => {
      const [a, b] = [Math.floor(e / l), e % l];
      return transposed ? a - b + l - 1 : b - a + l - 1; // key − query + L − 1
    }), [l, l], 'int32');
    const byQuery = offsets(false); // [query, key]
    const rq = gather(rel.rq, byQuery, 0); // [L(q), L(k), D]
    const rkT = gather(rel.rk, offsets(true), 0); // [L(k), L(q), D]
    const qr = reshape(matmul(unsqueeze(qs, -2), mT(rq)), logits.shape); // q_i·r^q_(j−i)
    const kr = mT(reshape(matmul(unsqueeze(mul(kL, d ** -0.5), -2), mT(rkT)), logits.shape)); // k_j·r^k_(j−i)
    logits = add(add(logits, qr), kr);
    tables = { rv: gather(rel.rv, byQuery, 0) }; // [L(q), L(k), D]
  }
  const p = pre ? (pre.k.shape[2] as number) : 0;
  if (pre) logits = concat([matmul(qs, mT(overBlocks(pre.k))), logits], -1); // [B, H, A, L, P + L]
  const probs = softmax(logits, -1);
  const l = qL.shape[3] as number;
  const line = p > 0 ? slice(probs, [4], [p], [p + l]) : probs;
  let out = matmul(line, vL); // [B, H, A, L, D]
  if (pre) out = add(out, matmul(slice(probs, [4], [0], [p]), overBlocks(pre.v)));
  let posValue: Tensor | undefined;
  if (tables) {
    posValue = reshape(matmul(unsqueeze(line, -2), tables.rv), out.shape); // Σ_j p_ij r^v_(j−i)
    out = add(out, posValue);
  }
  return { probs, out, posValue };
}

/**
 * A pass's probabilities [B, H, A, L, P + L] as the dense [B, H, N, N] matrix they apply: one
 * gather from the flattened probabilities (plus a 0 and a 1 for entries outside the pass and the
 * prefix rows, which pass through unchanged). `lineOf(y, x)` is a patch's flat line·L + position
 * index in `probs`; `keySlot(i, j)` the slot of patch key j for patch query i, or −1.
 */
function spread(probs: Tensor, n: number, p: number, lineOf: (y: number, x: number) => number, keySlot: (i: number, j: number) => number, gh: number, gw: number): Tensor {
  const width = probs.shape[4] as number;
  const total = gh * gw * width;
  const h = probs.shape[1]!;
  const flat = reshape(probs, [-1, h, total]); // [B, H, M·(P + L)]
  const zero = mul(slice(flat, [2], [0], [1]), 0);
  const ext = concat([flat, zero, add(zero, 1)], 2); // …, 0, 1
  const [ZERO, ONE] = [total, total + 1];
  const index = new Int32Array(n * n).fill(ZERO);
  for (let i = 0; i < n; i++) {
    if (i < p) {
      index[i * n + i] = ONE;
      continue;
    }
    const t = i - p;
    const base = lineOf(Math.floor(t / gw), t % gw) * width;
    for (let j = 0; j < n; j++) {
      if (j < p) index[i * n + j] = base + j;
      else {
        const slot = keySlot(t, j - p);
        if (slot >= 0) index[i * n + j] = base + p + slot;
      }
    }
  }
  return gather(ext, probs.graph.constant(index, [n, n], 'int32'), 2); // [B, H, N, N]
}
