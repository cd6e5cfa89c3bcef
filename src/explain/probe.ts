/**
 * The graph side of explanations: one executable that returns a ViT's logits, every block's
 * attention probabilities and, when asked, gradients of a chosen class logit with respect to
 * those attentions (grad-rollout) and to the input (saliency). Everything else is host math.
 */
import { grad } from '../autodiff/grad.js';
import type { VisionTransformer } from '../models/vit.js';
import { mul, sum } from '../ops/index.js';
import { compileTraced, trace, type Executable, type InputSpec } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import type { Tensor } from '../ir/tensor.js';

export interface ProbeOptions {
  /** Gradients of the selected logit to return: w.r.t. every block's attention, the input, or both. */
  gradients?: readonly ('attention' | 'input')[];
  session?: SessionOptions;
}

export interface Probe {
  readonly exe: Executable;
  readonly depth: number;
  readonly heads: number;
  /** Tokens per sequence: prefix tokens + patches. */
  readonly tokens: number;
  readonly prefix: number;
  readonly classes: number;
  readonly gradients: readonly ('attention' | 'input')[];
}

export interface ProbeResult {
  /** [B, classes] */
  logits: Float32Array;
  /** Per block [B, H, T, T] softmax probabilities. */
  attentions: Float32Array[];
  /** Per block [B, H, T, T]: ∂ logit_c / ∂ A (when compiled with 'attention' gradients). */
  attentionGrads?: Float32Array[];
  /** [B, C, H, W]: ∂ logit_c / ∂ x for the normalised input (when compiled with 'input' gradients). */
  inputGrad?: Float32Array;
}

export async function compileProbe(model: VisionTransformer, opts: ProbeOptions = {}): Promise<Probe> {
  const [c, h, w] = model.inputShape;
  const classes = model.config.numClasses;
  if (classes < 1) throw new RangeError('explain: the model has no classification head (numClasses 0)');
  const gradients = opts.gradients ?? [];
  const specs: InputSpec[] = [{ name: 'x', shape: ['batch', c, h, w] }];
  // a one-hot row per image selects the explained logit: the target is Σ_b logits[b, c_b]
  if (gradients.length) specs.push({ name: 'select', shape: ['batch', classes] });
  const traced = trace((x, select) => {
    const { logits, attentions } = model.forward(x, { attention: true });
    const outputs: Record<string, Tensor> = { logits };
    attentions!.forEach((a, l) => { outputs[`attn/${l}`] = a; });
    if (select) {
      const wrt = [...(gradients.includes('attention') ? attentions! : []), ...(gradients.includes('input') ? [x] : [])];
      const grads = grad(sum(mul(logits, select)), wrt);
      if (gradients.includes('attention')) attentions!.forEach((_, l) => { outputs[`grad_attn/${l}`] = grads[l]!; });
      if (gradients.includes('input')) outputs.grad_x = grads[grads.length - 1]!;
    }
    return outputs;
  }, specs);
  const exe = await compileTraced(traced, { ...opts.session, params: 'initializers' });
  const [gh, gw] = model.patchEmbed.gridSize;
  return {
    exe, depth: model.config.depth, heads: model.config.numHeads, tokens: model.numPrefixTokens + gh * gw,
    prefix: model.numPrefixTokens, classes, gradients,
  };
}

/** Runs a probe on normalised images [B, C, H, W]; `classes` (one per image) selects the logits to differentiate. */
export async function runProbe(probe: Probe, x: Float32Array, classes?: readonly number[]): Promise<ProbeResult> {
  const feeds: Record<string, Float32Array> = { x };
  if (probe.gradients.length) {
    if (!classes) throw new RangeError('runProbe: a probe with gradients needs the class of each image');
    const select = new Float32Array(classes.length * probe.classes);
    classes.forEach((k, b) => { select[b * probe.classes + k] = 1; });
    feeds.select = select;
  }
  const out = await probe.exe.run(feeds);
  const f32 = (name: string) => out[name]!.data as Float32Array;
  const layers = Array.from({ length: probe.depth }, (_, l) => l);
  return {
    logits: f32('logits'),
    attentions: layers.map((l) => f32(`attn/${l}`)),
    attentionGrads: probe.gradients.includes('attention') ? layers.map((l) => f32(`grad_attn/${l}`)) : undefined,
    inputGrad: probe.gradients.includes('input') ? f32('grad_x') : undefined,
  };
}
