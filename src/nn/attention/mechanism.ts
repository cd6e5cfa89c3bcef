/**
 * The attention-mechanism interface: how one attention layer turns its queries, keys and values
 * q, k, v [B, H, N, D] into its output [B, H, N, D]. The layer around it (`Attention` in
 * transformer.ts: fused qkv, heads, proj) is the same for every mechanism, so the parameter keys
 * stay timm's `attn.qkv` / `attn.proj` and a checkpoint moves between mechanisms. A mechanism's
 * own state (Performer's random features, axial relative embeddings) lives under its child name
 * (`attn.fast_attention.projection_matrix`, `attn.axial.relative_width`).
 *
 * Every mechanism here applies a row-stochastic matrix A(q, k) to the values (plus, for axial
 * relative terms, a positional value term): `matrix` returns that A [B, H, N, N] for attention
 * maps. When maps are asked for the output is computed through it, so the gradient with respect
 * to A (gradient rollout) is the output's own; otherwise `attend` runs the mechanism's efficient
 * computation and A is never built.
 */
import type { Tensor } from '../../ir/tensor.js';
import { ShapeError } from '../../ir/errors.js';
import { add, cast, equal, matmul, maximum, mT, mul, reshape, slice, softmax, sub } from '../../ops/index.js';
import { mixSeed } from '../../random.js';
import { Module, type Buffer, type Parameter } from '../module.js';

/** The token sequence a ViT block attends over: `prefix` tokens (class, distillation) then a row-major grid of patches. */
export interface TokenLayout {
  prefix: number;
  grid: readonly [number, number];
}

/** What every mechanism is built from. */
export interface MechanismContext {
  headDim: number;
  numHeads: number;
  /** The token layout; without one (a block used outside a ViT) every token is a patch of a 1 × N grid. */
  layout?: TokenLayout;
  /** The model's seed: Performer's features are drawn from it. */
  seed: number;
}

/** An additive mask entry that removes a key: exp underflows to exactly 0, and stays finite (no inf − inf). */
export const MASKED = -1e9;

export abstract class AttentionMechanism extends Module {
  /** The attn_type this mechanism implements. */
  abstract readonly type: string;

  constructor(readonly ctx: MechanismContext) {
    super();
  }

  /** q, k, v [B, H, N, D] → [B, H, N, D], by the mechanism's own (sub-quadratic where it can) computation. */
  abstract attend(q: Tensor, k: Tensor, v: Tensor): Tensor;

  /** The attention matrix A [B, H, N, N] the mechanism applies: attend(q, k, v) = A v (+ positional value terms). */
  abstract matrix(q: Tensor, k: Tensor): Tensor;

  /**
   * The output and, when `withMatrix`, the matrix it was computed from. Mechanisms whose values
   * get more than A v (axial relative terms) override this.
   */
  attendWithMatrix(q: Tensor, k: Tensor, v: Tensor, withMatrix: boolean): { out: Tensor; attn?: Tensor } {
    if (!withMatrix) return { out: this.attend(q, k, v) };
    const attn = this.matrix(q, k);
    return { out: matmul(attn, v), attn };
  }

  /** The layout, or a 1 × N grid of patches when the block has none; checked against N. */
  protected layoutFor(n: number): TokenLayout {
    const layout = this.ctx.layout ?? { prefix: 0, grid: [1, n] as const };
    const [gh, gw] = layout.grid;
    if (layout.prefix + gh * gw !== n) {
      throw new ShapeError(`${this.path || 'attention'}: ${this.type} attention over ${n} tokens, but its layout is ${layout.prefix} prefix + ${gh}×${gw} patches`);
    }
    return layout;
  }
}

/** softmax(q kᵀ / √D) over the last axis, with an optional additive mask. */
export function softmaxScores(q: Tensor, k: Tensor, mask?: Tensor): Tensor {
  const d = q.shape[q.rank - 1] as number;
  const logits = matmul(mul(q, d ** -0.5), mT(k));
  return softmax(mask ? add(logits, mask) : logits, -1);
}

/**
 * An additive [N, N] mask from per-token groups: query i sees key j when both are in the same
 * group, or when i is a patch and j a prefix token (prefix tokens are global keys). A prefix
 * query sees only itself (its own group). Built in the graph from [N] constants, so no N × N
 * constant is stored in the model.
 */
export function groupMask(q: Tensor, groups: readonly number[], prefix: number): Tensor {
  const g = q.graph;
  const n = groups.length;
  const dtype = q.dtype;
  const host = (values: number[]) => (dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values));
  const id = g.constant(host([...groups]), [n], dtype);
  const isPatch = g.constant(host(groups.map((_, i) => (i >= prefix ? 1 : 0))), [n, 1], dtype);
  const isPrefix = g.constant(host(groups.map((_, i) => (i < prefix ? 1 : 0))), [1, n], dtype);
  const same = cast(equal(reshape(id, [n, 1]), reshape(id, [1, n])), dtype); // [N, N]
  const allowed = maximum(same, mul(isPatch, isPrefix));
  return mul(sub(1, allowed), MASKED); // 0 where allowed, MASKED elsewhere
}

/** The rows [start, end) of x along the token axis 2. */
export const tokens = (x: Tensor, start: number, end: number): Tensor => slice(x, [2], [start], [end]);

/** x [B, H, P, D] viewed as [B, H, 1, P, D], to broadcast over a block axis. */
export const overBlocks = (x: Tensor): Tensor => reshape(x, [-1, x.shape[1]!, 1, ...x.shape.slice(2)]);

/** A seed for state a mechanism draws, from the model seed, a salt, a counter and the module path. */
export function stateSeed(seed: number, salt: number, counter: number, path: string): number {
  return mixSeed(seed, salt, counter, ...Array.from(path, (ch) => ch.charCodeAt(0)));
}

/**
 * Buffers redrawn on the host on a schedule during training (Performer's random features), with
 * the function that redraws one for an optimiser step. Keyed by the Buffer object, so a model's
 * buffers are found through `namedBuffers()` alone.
 */
const scheduled = new WeakMap<Buffer, (step: number) => boolean>();

export function scheduleRedraw(buffer: Buffer, redraw: (step: number) => boolean): void {
  scheduled.set(buffer, redraw);
}

/**
 * Brings every scheduled buffer of `model` to the draw of optimiser step `step` (a pure function
 * of the model seed, the module path and the step's redraw round, so a resumed run draws what
 * the first run drew). Call it before each training step; eval and export never call it, so the
 * features stay fixed there. Returns the keys it redrew.
 */
export function redrawScheduledBuffers(model: Module, step: number): string[] {
  const redrawn: string[] = [];
  for (const [key, buffer] of model.namedBuffers()) {
    const redraw = scheduled.get(buffer);
    if (redraw?.(step)) redrawn.push(key);
  }
  return redrawn;
}

/**
 * State a mechanism owns beyond the standard block (its buffers and parameters): a checkpoint of
 * another mechanism lacks it, and loading one keeps this model's own values (see `fitMechanismState`).
 */
const mechanismState = new WeakSet<Parameter | Buffer>();

export function markMechanismState(t: Parameter | Buffer): void {
  mechanismState.add(t);
}

export const isMechanismState = (t: Parameter | Buffer): boolean => mechanismState.has(t);
