/**
 * The graph side of explanations: one executable that returns a model's logits and, for models
 * with a token grid, every block's attention probabilities; when asked, also gradients of a
 * chosen class logit with respect to those attentions (grad-rollout) and to the input (saliency,
 * which any model supports). Everything else is host math.
 */
import { grad } from '../autodiff/grad.js';
import type { ImageModel, TokenGrid } from '../models/model.js';
import { mul, sum } from '../ops/index.js';
import { compileTraced, trace, type Executable, type InputSpec } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import type { Tensor } from '../ir/tensor.js';

/**
 * The model's token grid, or one line saying that `what` needs one (and `hint`, what to do
 * instead); `name` is the model as the user knows it (the checkpoint's model name).
 */
export function requireTokenGrid(model: ImageModel, what: string, { name = `the ${model.family} model`, hint = '' } = {}): TokenGrid {
  const grid = model.tokenGrid();
  if (!grid) throw new RangeError(`${name} has no token grid (attention over a grid of image patches), which ${what} needs${hint ? `; ${hint}` : ''}`);
  return grid;
}

export interface ProbeOptions {
  /** Gradients of the selected logit to return: w.r.t. every block's attention, the input, or both. */
  gradients?: readonly ('attention' | 'input')[];
  session?: SessionOptions;
}

export interface Probe {
  readonly exe: Executable;
  /** The token layout, when the probe returns attentions (depth, heads, tokens and prefix are 0 otherwise). */
  readonly grid?: TokenGrid;
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
  /** Per block [B, H, T, T] softmax probabilities (none for an input-gradient-only probe). */
  attentions: Float32Array[];
  /** Per block [B, H, T, T]: ∂ logit_c / ∂ A (when compiled with 'attention' gradients). */
  attentionGrads?: Float32Array[];
  /** [B, C, H, W]: ∂ logit_c / ∂ x for the normalised input (when compiled with 'input' gradients). */
  inputGrad?: Float32Array;
}

/**
 * Compiles a probe. Attentions are returned unless only input gradients are asked for: then the
 * probe works for any model; otherwise the model needs a token grid.
 */
export async function compileProbe(model: ImageModel, opts: ProbeOptions = {}): Promise<Probe> {
  const [c, h, w] = model.inputShape;
  const classes = model.numClasses;
  if (classes < 1) throw new RangeError('explain: the model has no classification head (numClasses 0)');
  const gradients = opts.gradients ?? [];
  const withAttention = !(gradients.length === 1 && gradients[0] === 'input');
  const grid = withAttention ? requireTokenGrid(model, 'attention maps') : undefined;
  const specs: InputSpec[] = [{ name: 'x', shape: ['batch', c, h, w] }];
  // a one-hot row per image selects the explained logit: the target is Σ_b logits[b, c_b]
  if (gradients.length) specs.push({ name: 'select', shape: ['batch', classes] });
  const traced = trace((x, select) => {
    const { logits, attentions = [] } = model.forward(x, { attention: withAttention });
    if (grid && attentions.length !== grid.depth) throw new RangeError(`explain: the ${model.family} model returned ${attentions.length} attention tensors for a token grid of depth ${grid.depth}`);
    const outputs: Record<string, Tensor> = { logits };
    attentions.forEach((a, l) => { outputs[`attn/${l}`] = a; });
    if (select) {
      const wrt = [...(gradients.includes('attention') ? attentions : []), ...(gradients.includes('input') ? [x] : [])];
      const grads = grad(sum(mul(logits, select)), wrt);
      if (gradients.includes('attention')) attentions.forEach((_, l) => { outputs[`grad_attn/${l}`] = grads[l]!; });
      if (gradients.includes('input')) outputs.grad_x = grads[grads.length - 1]!;
    }
    return outputs;
  }, specs);
  const exe = await compileTraced(traced, { ...opts.session, params: 'initializers' });
  const tokens = grid ? grid.prefix + grid.grid[0] * grid.grid[1] : 0;
  return { exe, grid, depth: grid?.depth ?? 0, heads: grid?.heads ?? 0, tokens, prefix: grid?.prefix ?? 0, classes, gradients };
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
