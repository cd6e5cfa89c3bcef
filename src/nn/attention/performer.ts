/**
 * Performer's FAVOR+ — "Rethinking Attention with Performers" (Choromanski et al. 2021,
 * https://arxiv.org/abs/2009.14794): softmax attention estimated with positive orthogonal random
 * features in O(N m D), as google-research/performer computes it (and lucidrains/performer-pytorch
 * ports it). With x' = x·D^-¼ and the features W [m, D],
 *
 *   φ(x) = m^-½ (exp(x'Wᵀ − ‖x'‖²/2 − s) + ε),  ε = 1e-4,
 *
 * s a stabiliser (the max over the features of each query; over all keys and features of each
 * sample and head for keys), which cancels between numerator and denominator up to ε. Then
 * out = φ(q) (φ(k)ᵀ v) / (φ(q) · Σφ(k)), an unbiased estimate of softmax(q kᵀ/√D) v whose error
 * falls as m grows. The stabiliser is differentiated as google-research's JAX does (lucidrains
 * detaches it; the gradients differ by terms of order ε). ε biases the estimate, more as m grows
 * (the keys' stabiliser grows with m, so the exponentials shrink towards ε): with q, k ~ N(0, 0.36)
 * at D = 16 the mean error stops falling near 5e-3 (output scale 0.4) beyond m ≈ 16k, where
 * float64 with ε = 0 keeps falling as m^-½ (measured; test/nn/attention.test.ts checks m ≤ 4,096).
 *
 * W is a buffer, `attn.fast_attention.projection_matrix` [m, D] (lucidrains' name): blocks of D
 * orthonormal rows (Gram–Schmidt of Gaussian rows) scaled by the norms of Gaussian vectors, as
 * `gaussian_orthogonal_random_matrix(scaling=0)`. m defaults to round(D ln D). It is drawn on the
 * host from the model seed, the module path and the redraw round floor(step / interval): during
 * training `redrawScheduledBuffers` redraws it every `featureRedrawInterval` optimiser steps
 * (lucidrains' default 1,000); eval and export use the features the checkpoint holds. A
 * checkpoint of another mechanism has none: loading it keeps this model's round-0 draw.
 *
 * Prefix tokens are ordinary tokens: every token attends to every token.
 */
import type { Tensor } from '../../ir/tensor.js';
import { add, exp, max, mul, mT, matmul, sub, sum } from '../../ops/index.js';
import { Random } from '../../random.js';
import type { Buffer } from '../module.js';
import { AttentionMechanism, markMechanismState, scheduleRedraw, stateSeed, type MechanismContext } from './mechanism.js';
import { kernelAttention, kernelMatrix } from './linear.js';

/** google-research's and lucidrains' kernel epsilon. */
export const PERFORMER_EPS = 1e-4;
const FEATURE_SALT = 0xfa70;

/** round(D ln D), the feature count the paper's analysis suggests. */
export const defaultNbFeatures = (headDim: number): number => Math.max(1, Math.round(headDim * Math.log(headDim)));

export class PerformerAttention extends AttentionMechanism {
  readonly type = 'performer';
  readonly nbFeatures: number;
  readonly features: Buffer;
  /** The redraw round the buffer holds (0: the initial draw, or the checkpoint's features). */
  private round = 0;

  /** `nbFeatures` 0: round(D ln D). `redrawInterval` 0: never redraw. */
  constructor(ctx: MechanismContext, nbFeatures = 0, readonly redrawInterval = 1000) {
    super(ctx);
    const d = ctx.headDim;
    this.nbFeatures = nbFeatures > 0 ? nbFeatures : defaultNbFeatures(d);
    this.features = this.addBuffer('projection_matrix', [this.nbFeatures, d], () => this.draw(0)); // [m, D]
    markMechanismState(this.features);
    scheduleRedraw(this.features, (step) => {
      if (!(this.redrawInterval > 0)) return false;
      const round = Math.floor(step / this.redrawInterval);
      if (round === this.round) return false;
      this.round = round;
      this.features.data = this.draw(round);
      return true;
    });
  }

  /** The features of redraw round `round`: a function of the model seed and this module's path. */
  draw(round: number): Float32Array {
    const rng = new Random(stateSeed(this.ctx.seed, FEATURE_SALT, round, this.path));
    return orthogonalGaussianFeatures(this.nbFeatures, this.ctx.headDim, rng);
  }

  private phi(x: Tensor, isQuery: boolean): Tensor {
    return performerFeatures(x, this.b(x.graph, 'projection_matrix'), isQuery);
  }

  attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    return kernelAttention(this.phi(q, true), this.phi(k, false), v, 0);
  }

  matrix(q: Tensor, k: Tensor): Tensor {
    return kernelMatrix(this.phi(q, true), this.phi(k, false), 0);
  }
}

/** FAVOR+ positive features of x [B, H, N, D] with W [m, D] → [B, H, N, m]. */
export function performerFeatures(x: Tensor, w: Tensor, isQuery: boolean, eps = PERFORMER_EPS): Tensor {
  const d = x.shape[3] as number;
  const m = w.shape[0] as number;
  const dash = matmul(mul(x, d ** -0.25), mT(w)); // x'Wᵀ [B, H, N, m]
  const half = mul(sum(mul(x, x), -1, true), 0.5 * d ** -0.5); // ‖x'‖²/2 [B, H, N, 1]
  const stab = isQuery ? max(dash, -1, true) : max(dash, [2, 3], true); // [B, H, N, 1] / [B, H, 1, 1]
  return mul(add(exp(sub(sub(dash, half), stab)), eps), m ** -0.5);
}

/**
 * m × d random features: ⌈m/d⌉ blocks of d orthonormal rows (modified Gram–Schmidt of Gaussian
 * rows, in float64; the last block cut to the remaining rows), row i scaled by the norm of a
 * Gaussian vector of length d, so each row's length is χ_d-distributed like a Gaussian row's.
 */
export function orthogonalGaussianFeatures(m: number, d: number, rng: Random): Float32Array {
  const out = new Float32Array(m * d);
  const block = new Float64Array(d * d);
  for (let start = 0; start < m; start += d) {
    for (let i = 0; i < d * d; i++) block[i] = rng.normal();
    for (let i = 0; i < d; i++) {
      const row = block.subarray(i * d, (i + 1) * d);
      // twice, for rows orthogonal to working precision
      for (let pass = 0; pass < 2; pass++) {
        for (let j = 0; j < i; j++) {
          const prev = block.subarray(j * d, (j + 1) * d);
          let dot = 0;
          for (let e = 0; e < d; e++) dot += row[e]! * prev[e]!;
          for (let e = 0; e < d; e++) row[e]! -= dot * prev[e]!;
        }
      }
      let norm = 0;
      for (let e = 0; e < d; e++) norm += row[e]! * row[e]!;
      norm = Math.sqrt(norm);
      for (let e = 0; e < d; e++) row[e]! /= norm;
    }
    const rows = Math.min(d, m - start);
    for (let i = 0; i < rows; i++) for (let e = 0; e < d; e++) out[(start + i) * d + e] = block[i * d + e]!;
  }
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let e = 0; e < d; e++) s += rng.normal() ** 2;
    const scale = Math.sqrt(s);
    for (let e = 0; e < d; e++) out[i * d + e]! *= scale;
  }
  return out;
}
