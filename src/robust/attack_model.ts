/**
 * A model bound for attacks: its input is the image in pixel space [0, 1], normalised inside the
 * graph with the checkpoint's mean/std, so gradients are taken with respect to pixels (as
 * torchattacks does). Parameters are graph inputs read from the model's host arrays on every
 * run, so the same executable follows the weights during adversarial training.
 */
import type { ImageModel } from '../models/model.js';
import { div, logSoftmax, mul, neg, oneHot, sub, sum } from '../ops/index.js';
import { compile, type Executable } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import type { Tensor } from '../ir/tensor.js';

export interface AttackModelOptions {
  /** Per-channel normalisation (one value or one per channel). */
  mean: readonly number[];
  std: readonly number[];
  session?: SessionOptions;
}

export interface LossAndGrad {
  /** [B, classes] */
  logits: Float32Array;
  /** Cross-entropy of each image [B]. */
  losses: Float32Array;
  /** ∂ CE_b / ∂ x_b for each image, in pixel space [B, C, H, W]. */
  grad: Float32Array;
}

export interface AttackModel {
  /** [C, H, W] */
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  /** Logits, per-image losses and the input gradient for images in [0, 1]. */
  lossAndGrad(x: Float32Array, labels: ArrayLike<number>): Promise<LossAndGrad>;
  logits(x: Float32Array): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** (x − mean) / std with [1, C, 1, 1] constants. */
function normaliseInGraph(x: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  const c = x.shape[1] as number;
  const per = (v: readonly number[], name: string) => {
    if (v.length !== 1 && v.length !== c) throw new RangeError(`attack: ${name} needs 1 or ${c} values, got ${v.length}`);
    return x.graph.constant(Float32Array.from({ length: c }, (_, i) => v[i] ?? v[0]!), [1, c, 1, 1], 'float32');
  };
  return div(sub(x, per(mean, 'mean')), per(std, 'std'));
}

export async function compileAttackModel(model: ImageModel, opts: AttackModelOptions): Promise<AttackModel> {
  const [c, h, w] = model.inputShape;
  const classes = model.numClasses;
  if (classes < 1) throw new RangeError('attack: the model has no classification head (numClasses 0)');
  const session = opts.session ?? {};
  const image = { name: 'x', shape: ['batch', c, h, w] as const };
  const grad = await compile((x, labels) => {
    const { logits } = model.forward(normaliseInGraph(x, opts.mean, opts.std));
    // per-image CE summed over the batch: each image's gradient is its own, whatever the batch size
    const losses = neg(sum(mul(oneHot(labels, classes), logSoftmax(logits, -1)), -1));
    return { loss: sum(losses), losses, logits };
  }, [image, { name: 'labels', shape: ['batch'], dtype: 'int64' }], { ...session, grad: { wrt: ['x'] } });
  const forward = await compile((x) => ({ logits: model.forward(normaliseInGraph(x, opts.mean, opts.std)).logits }), [image], session);
  return new BoundAttackModel([c, h, w], classes, grad, forward);
}

class BoundAttackModel implements AttackModel {
  constructor(readonly inputShape: readonly [number, number, number], readonly classes: number,
    private readonly gradExe: Executable, private readonly forwardExe: Executable) {}

  async lossAndGrad(x: Float32Array, labels: ArrayLike<number>): Promise<LossAndGrad> {
    const out = await this.gradExe.run({ x, labels: BigInt64Array.from(Array.from(labels, (l) => BigInt(l))) });
    return { logits: out.logits!.data as Float32Array, losses: out.losses!.data as Float32Array, grad: out['grad/x']!.data as Float32Array };
  }

  async logits(x: Float32Array): Promise<Float32Array> {
    return (await this.forwardExe.run({ x })).logits!.data as Float32Array;
  }

  async dispose(): Promise<void> {
    await this.gradExe.dispose();
    await this.forwardExe.dispose();
  }
}

/** Per-channel affine map of a batch [B, C, H, W]: v·scale[c] + shift[c]. */
function perChannel(x: Float32Array, [c, h, w]: readonly [number, number, number], scale: (ch: number) => number, shift: (ch: number) => number): Float32Array {
  const plane = h * w;
  if (x.length % (c * plane) !== 0) throw new RangeError(`${x.length} values are no whole batch of ${c}×${h}×${w} images`);
  return x.map((v, i) => {
    const ch = Math.floor(i / plane) % c;
    return v * scale(ch) + shift(ch);
  });
}

const at = (v: readonly number[], ch: number) => v[ch] ?? v[0]!;

/** Normalised images [B, C, H, W] back to pixels in [0, 1]: x·std + mean (e.g. a training batch). */
export function toPixels(x: Float32Array, shape: readonly [number, number, number], mean: readonly number[], std: readonly number[]): Float32Array {
  return perChannel(x, shape, (ch) => at(std, ch), (ch) => at(mean, ch));
}

/** Pixels in [0, 1] to the model's normalised input: (x − mean) / std. */
export function toNormalised(x: Float32Array, shape: readonly [number, number, number], mean: readonly number[], std: readonly number[]): Float32Array {
  return perChannel(x, shape, (ch) => 1 / at(std, ch), (ch) => -at(mean, ch) / at(std, ch));
}
