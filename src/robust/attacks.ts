/**
 * Gradient attacks in pixel space [0, 1], with torchattacks' semantics:
 * - FGSM (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572): x + ε·sign(∇), clipped to
 *   [0, 1]; with a random start it is "fast" FGSM (Wong et al. 2020,
 *   https://arxiv.org/abs/2001.03994; torchattacks' FFGSM): a uniform start in the ε-ball, one
 *   step of α (default 1.25ε), projection.
 * - PGD (Madry et al. 2018, https://arxiv.org/abs/1706.06083): `steps` steps of α (L∞: sign of
 *   the gradient; L2: the gradient over its L2 norm), each followed by projection onto the ε-ball
 *   around the clean image and onto the [0, 1] box; optionally from a random start.
 *
 * Projection is exact in float32: every returned image satisfies |x_adv − x|∞ ≤ ε (or
 * ‖x_adv − x‖₂ ≤ ε) and 0 ≤ x_adv ≤ 1 when checked in float64.
 */
import { Random } from '../random.js';
import type { AttackModel } from './attack_model.js';

export type AttackMethod = 'fgsm' | 'pgd';
export type Norm = 'linf' | 'l2';

export interface AttackOptions {
  method: AttackMethod;
  /** Default 'linf'. */
  norm?: Norm;
  /** Radius of the threat ball in pixel units. */
  eps: number;
  /** Step size. PGD default 2.5·ε/steps (2/255 for ε = 8/255 and 10 steps); fast FGSM default 1.25·ε. */
  alpha?: number;
  /** PGD steps (default 10). */
  steps?: number;
  /** Start from a uniformly random point of the ball (PGD default true, as torchattacks; FGSM default false). */
  randomStart?: boolean;
}

export interface ResolvedAttack { method: AttackMethod; norm: Norm; eps: number; alpha: number; steps: number; randomStart: boolean }

/** Fills the defaults and validates. */
export function resolveAttack(o: AttackOptions): ResolvedAttack {
  const norm = o.norm ?? 'linf';
  if (o.method !== 'fgsm' && o.method !== 'pgd') throw new RangeError(`attack method must be fgsm or pgd, got "${o.method as string}"`);
  if (norm !== 'linf' && norm !== 'l2') throw new RangeError(`attack norm must be linf or l2, got "${norm as string}"`);
  if (!(o.eps >= 0 && Number.isFinite(o.eps))) throw new RangeError(`eps must be a finite number ≥ 0, got ${o.eps}`);
  const steps = o.method === 'fgsm' ? 1 : o.steps ?? 10;
  if (!(Number.isInteger(steps) && steps >= 1)) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  const randomStart = o.randomStart ?? o.method === 'pgd';
  if (o.method === 'fgsm' && !randomStart && o.alpha !== undefined && o.alpha !== o.eps) {
    throw new RangeError('FGSM steps by eps; alpha applies to PGD and to FGSM with a random start');
  }
  const alpha = o.alpha ?? (o.method === 'pgd' ? (2.5 * o.eps) / steps : randomStart ? 1.25 * o.eps : o.eps);
  if (!(alpha >= 0 && Number.isFinite(alpha))) throw new RangeError(`alpha must be a finite number ≥ 0, got ${alpha}`);
  return { method: o.method, norm, eps: o.eps, alpha, steps, randomStart };
}

/** The next float32 above (dir 1) or below (dir −1) a float32 value. */
function nextFloat32(v: number, dir: 1 | -1): number {
  if (v === 0) return dir * 1.401298464324817e-45;
  const f = new Float32Array([v]);
  const bits = new Int32Array(f.buffer);
  bits[0]! += (v > 0) === (dir > 0) ? 1 : -1;
  return f[0]!;
}

/** The float32 nearest to v that lies in [lo, hi] (float64 bounds with a float32 inside). */
function float32Within(v: number, lo: number, hi: number): number {
  let r = Math.fround(Math.min(hi, Math.max(lo, v)));
  if (r > hi) r = nextFloat32(r, -1);
  if (r < lo) r = nextFloat32(r, 1);
  return r;
}

/** Projects each image of `adv` onto {‖a − x‖∞ ≤ ε} ∩ [0, 1], in place. */
export function projectLinf(adv: Float32Array, x: Float32Array, eps: number): Float32Array {
  for (let i = 0; i < adv.length; i++) {
    const xi = x[i]!;
    adv[i] = float32Within(adv[i]!, Math.max(0, xi - eps), Math.min(1, xi + eps));
  }
  return adv;
}

/** Projects each image (of `per` values) of `adv` onto {‖a − x‖₂ ≤ ε} ∩ [0, 1], in place. */
export function projectL2(adv: Float32Array, x: Float32Array, eps: number, per: number): Float32Array {
  for (let start = 0; start < adv.length; start += per) {
    const a = adv.subarray(start, start + per);
    const c = x.subarray(start, start + per);
    const delta = Float64Array.from(a, (v, i) => v - c[i]!);
    const n = Math.sqrt(delta.reduce((acc, d) => acc + d * d, 0));
    let factor = n > eps ? eps / n : 1;
    // rounding to float32 may land a hair outside the ball: shrink until it is inside
    for (;;) {
      for (let i = 0; i < per; i++) a[i] = Math.min(1, Math.max(0, Math.fround(c[i]! + delta[i]! * factor)));
      if (l2Distance(a, c) <= eps) break;
      factor *= 1 - 2 ** -20;
    }
  }
  return adv;
}

/** ‖a − b‖₂ in float64. */
export function l2Distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

function randomStart(x: Float32Array, a: ResolvedAttack, per: number, rng: Random): Float32Array {
  const adv = new Float32Array(x.length);
  if (a.norm === 'linf') {
    for (let i = 0; i < x.length; i++) adv[i] = x[i]! + (2 * rng.uniform() - 1) * a.eps;
    return projectLinf(adv, x, a.eps);
  }
  // torchattacks PGDL2: a normal direction scaled to radius r·ε, r ~ U(0, 1)
  for (let start = 0; start < x.length; start += per) {
    const d = Float64Array.from({ length: per }, () => rng.normal());
    const n = Math.sqrt(d.reduce((s, v) => s + v * v, 0));
    const scale = (rng.uniform() * a.eps) / (n || 1);
    for (let i = 0; i < per; i++) adv[start + i] = x[start + i]! + d[i]! * scale;
  }
  return projectL2(adv, x, a.eps, per);
}

/** One ascent step of size α from `adv` along the gradient's sign (L∞) or its direction (L2). */
function step(adv: Float32Array, grad: Float32Array, a: ResolvedAttack, per: number): Float32Array {
  const out = new Float32Array(adv.length);
  if (a.norm === 'linf') {
    for (let i = 0; i < adv.length; i++) out[i] = adv[i]! + a.alpha * Math.sign(grad[i]!);
    return out;
  }
  for (let start = 0; start < adv.length; start += per) {
    let s = 0;
    for (let i = start; i < start + per; i++) s += grad[i]! ** 2;
    const scale = a.alpha / (Math.sqrt(s) + 1e-10); // torchattacks' eps_for_division
    for (let i = start; i < start + per; i++) out[i] = adv[i]! + grad[i]! * scale;
  }
  return out;
}

export interface AttackResult {
  /** The adversarial images in [0, 1]. */
  adversarial: Float32Array;
  /** Per-image cross-entropy at the last gradient evaluation (before the final step). */
  lastLosses: Float32Array;
}

/**
 * Perturbs a batch of images in [0, 1] (x [B, C, H, W], integer labels) to raise the model's
 * cross-entropy: the building block of attacks and of adversarial training. `rng` drives the
 * random start.
 */
export async function perturbBatch(model: AttackModel, x: Float32Array, labels: ArrayLike<number>, opts: AttackOptions, rng = new Random(0)): Promise<AttackResult> {
  const a = resolveAttack(opts);
  const [c, h, w] = model.inputShape;
  const per = c * h * w;
  if (x.length !== labels.length * per) throw new RangeError(`attack: ${x.length} pixel values for ${labels.length} labels of ${c}×${h}×${w} images`);
  const project = (adv: Float32Array) => (a.norm === 'linf' ? projectLinf(adv, x, a.eps) : projectL2(adv, x, a.eps, per));
  let adv: Float32Array = a.randomStart ? randomStart(x, a, per, rng) : project(x.slice());
  let lastLosses: Float32Array = new Float32Array(labels.length);
  for (let s = 0; s < a.steps; s++) {
    const { grad, losses } = await model.lossAndGrad(adv, labels);
    lastLosses = losses;
    adv = project(step(adv, grad, a, per));
  }
  return { adversarial: adv, lastLosses };
}

/** FGSM (or fast FGSM with `randomStart`): one step of ε (α with a random start). */
export async function fgsm(model: AttackModel, x: Float32Array, labels: ArrayLike<number>, opts: Omit<AttackOptions, 'method' | 'steps'>, rng?: Random): Promise<Float32Array> {
  return (await perturbBatch(model, x, labels, { ...opts, method: 'fgsm' }, rng)).adversarial;
}

/** Projected gradient descent on the loss (ascent), L∞ or L2. */
export async function pgd(model: AttackModel, x: Float32Array, labels: ArrayLike<number>, opts: Omit<AttackOptions, 'method'>, rng?: Random): Promise<Float32Array> {
  return (await perturbBatch(model, x, labels, { ...opts, method: 'pgd' }, rng)).adversarial;
}

/** Defaults by input kind: ε = 0.1 for grayscale (28×28 Fashion-MNIST/MNIST), 8/255 for RGB under L∞; 1.5 and 0.5 under L2. */
export function defaultEps(channels: number, norm: Norm): number {
  if (norm === 'l2') return channels === 1 ? 1.5 : 0.5;
  return channels === 1 ? 0.1 : 8 / 255;
}
