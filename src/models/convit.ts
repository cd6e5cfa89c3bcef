/**
 * ConViT — "ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases"
 * (d'Ascoli et al. 2021, https://arxiv.org/abs/2103.10697).
 *
 * A ViT whose first `localUpToLayer` blocks use gated positional self-attention (GPSA): each head
 * mixes content attention with a learned attention over relative patch positions, initialised to
 * act like a convolution, and a per-head gate lets training move it away from locality. Plain
 * multi-head self-attention (MHSA) blocks follow; the class token joins right before the first of
 * them, so GPSA blocks see patch tokens only.
 *
 * Layout, semantics and initialisation follow timm's `convit.py`, so a timm state dict loads
 * without any key mapping:
 * - `embedDim` is the width *per head*, as timm's argument: tokens are `embedDim · numHeads` wide
 *   (48 per head in every released model);
 * - `pos_embed` covers the patches only (no class slot); LayerNorm eps 1e-6; exact GELU; no bias
 *   on `qk`, `v` and `qkv` by default (timm's `qkv_bias=False`);
 * - `global_pool='token'` takes the class token after the final norm; `'avg'` the mean of every
 *   token but the class token, after the same norm (ConViT has no fc_norm);
 * - Linear weights trunc-normal(0.02) with zero biases, cls_token and pos_embed trunc-normal(0.02),
 *   then GPSA's locality init (v = identity, pos_proj as below) and gates at 1.
 * Attention dropout, projection dropout and pos_drop (all 0 in timm's entries) are not built.
 *
 * Attention maps: ConViT's attention is global, so it has a token grid. The class token exists
 * only from block `localUpToLayer` on; with `attention: true` each GPSA block's attention
 * [B, H, N, N] is returned laid out over the tokens of the MHSA blocks, [B, H, 1 + N, 1 + N], with
 * the absent class token as its own only source (row and column 0 are e₀). Rollout through all
 * blocks then follows the class token's attention back through the GPSA blocks' mixing of patches
 * to the input patches, and the class token's learned, image-independent start stays in column 0,
 * which the maps drop. The forward reads the GPSA attention back out of that laid-out tensor, so
 * gradients with respect to it (grad-rollout) are the attention's own, zero at the padding.
 */
import { z } from 'zod';
import type { Graph } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';
import { BATCH } from '../ir/shape.js';
import { add, concat, div, expand, matmul, mean, mul, pad, reshape, sigmoid, slice, softmax, sub, sum, transpose } from '../ops/index.js';
import { Random } from '../random.js';
import { Module, StateDictError, type StateDict } from '../nn/module.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { PatchEmbed } from '../nn/patch_embed.js';
import { Attention, Mlp } from '../nn/transformer.js';
import { softmaxScores } from '../nn/attention/mechanism.js';
import { ones, truncNormal, type Initializer } from '../nn/init.js';
import { resamplePosEmbed } from './pos_embed.js';
import { adaptPatchEmbed, blockLayerGrouping, dropNoiseInputs } from './family_parts.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type NoiseInput, type TokenGrid } from './model.js';
import type { ModelEntry, PretrainedConfig } from './registry.js';

export interface ConvitConfig extends CommonModelArgs {
  patchSize: number;
  /** Width per head (timm's `embed_dim`): the token width is embedDim · numHeads. */
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** Biases on qk and v (GPSA) and qkv (MHSA); timm's default is none. */
  qkvBias: boolean;
  /** Blocks 0 … localUpToLayer − 1 use GPSA; the class token joins before block localUpToLayer (< depth). */
  localUpToLayer: number;
  /** Scales the locality init of pos_proj: larger is more sharply local (the paper's α). */
  localityStrength: number;
  /** An absolute position embedding over the patches (timm's use_pos_embed). */
  usePosEmbed: boolean;
  /** 'token': the class token; 'avg': the mean of the patch tokens (both after the final norm). */
  globalPool: 'token' | 'avg';
}

/** convit_base's architecture (timm's class defaults say local_up_to_layer 3, which no entry uses). */
export const convitDefaults: ConvitConfig = {
  imgSize: 224, patchSize: 16, inChans: 3, numClasses: 1000, embedDim: 48, depth: 12, numHeads: 16, mlpRatio: 4,
  qkvBias: false, localUpToLayer: 10, localityStrength: 1, usePosEmbed: true, globalPool: 'token', dropPathRate: 0, dropRate: 0, seed: 0,
};

const count = z.number().int().positive();
/** The architecture keys of --model-kwargs, named as timm's arguments (embed_dim is per head). */
export const convitKwargsSchema = z.object({
  patchSize: count, embedDim: count, depth: count, numHeads: count, mlpRatio: z.number().positive(), qkvBias: z.boolean(),
  localUpToLayer: z.number().int().nonnegative(), localityStrength: z.number().positive(), usePosEmbed: z.boolean(),
  globalPool: z.enum(['token', 'avg']),
}).partial().strict();

const LN_EPS = 1e-6;
// ---- relative positions and the locality init ---------------------------------------------------

/**
 * The GPSA position features of a side × side patch grid (patches row-major): for query patch i
 * and key patch j, [Δx, Δy, Δx² + Δy²] with Δx the column of j minus the column of i and Δy the
 * row difference. [N, N, 3] flat, N = side².
 */
export function relativePositions(side: number): Float32Array {
  const n = side * side;
  const out = new Float32Array(n * n * 3);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const dx = (j % side) - (i % side);
      const dy = Math.floor(j / side) - Math.floor(i / side);
      out.set([dx, dy, dx * dx + dy * dy], (i * n + j) * 3);
    }
  }
  return out;
}

/**
 * pos_proj.weight [H, 3] at init: the heads tile a k × k kernel (k = ⌊√H⌋, centre c = (k − 1)/2),
 * head h1 + k·h2 peaked at offset (h2 − c, h1 − c): its score 2(h2 − c)Δx + 2(h1 − c)Δy − (Δx² + Δy²)
 * is largest there. Heads beyond k² keep the default init; all rows are scaled by `strength`.
 */
export function localityInit(numHeads: number, strength: number): Initializer {
  return (n, rng) => {
    const w = truncNormal(0.02)(n, rng);
    const k = Math.floor(Math.sqrt(numHeads));
    const c = (k - 1) / 2;
    for (let h1 = 0; h1 < k; h1++) for (let h2 = 0; h2 < k; h2++) w.set([2 * (h2 - c), 2 * (h1 - c), -1], (h1 + k * h2) * 3);
    for (let i = 0; i < n; i++) w[i]! *= strength;
    return w;
  };
}

const identityInit = (dim: number): Initializer => (n) => {
  const w = new Float32Array(n);
  for (let i = 0; i < dim; i++) w[i * dim + i] = 1;
  return w;
};

/** A Linear whose weight starts from `init` (timm's local_init overwrites v and pos_proj after the default init). */
class InitLinear extends Linear {
  constructor(inFeatures: number, outFeatures: number, rng: Random, init: Initializer, opts: { bias?: boolean } = {}) {
    super(inFeatures, outFeatures, rng, opts);
    this.addParam('weight', [outFeatures, inFeatures], init, rng); // replaces the weight in place (same key order)
  }
}

/** One [N, N, 3] constant per graph and grid, shared by every GPSA block. */
const relativeConstants = new WeakMap<Graph, Map<number, Tensor>>();
function relativeConstant(g: Graph, side: number): Tensor {
  let bySide = relativeConstants.get(g);
  if (!bySide) relativeConstants.set(g, (bySide = new Map()));
  let t = bySide.get(side);
  if (!t) bySide.set(side, (t = g.constant(relativePositions(side), [side * side, side * side, 3], 'float32')));
  return t;
}

// ---- gated positional self-attention ----------------------------------------------------------

export class GPSA extends Module {
  readonly headDim: number;
  readonly qk: Linear;
  readonly v: Linear;
  readonly proj: Linear;
  readonly posProj: Linear;

  constructor(readonly dim: number, readonly numHeads: number, readonly side: number, rng: Random,
    { qkvBias = false, localityStrength = 1 }: { qkvBias?: boolean; localityStrength?: number } = {}) {
    super();
    if (dim % numHeads !== 0) throw new RangeError(`GPSA: dim ${dim} is not divisible by ${numHeads} heads`);
    this.headDim = dim / numHeads;
    this.addParam('gating_param', [numHeads], ones());
    this.qk = this.addChild('qk', new Linear(dim, dim * 2, rng, { bias: qkvBias }));
    this.v = this.addChild('v', new InitLinear(dim, dim, rng, identityInit(dim), { bias: qkvBias }));
    this.proj = this.addChild('proj', new Linear(dim, dim, rng));
    this.posProj = this.addChild('pos_proj', new InitLinear(3, numHeads, rng, localityInit(numHeads, localityStrength)));
  }

  /**
   * Patch tokens [B, N, D] → output [B, N, D] and the attention [B, H, N, N]; with `laidOut`, the
   * attention as [B, H, 1 + N, 1 + N] with the class token as its own source (see the file header).
   */
  forwardWithAttention(x: Tensor, laidOut = false): { out: Tensor; attn: Tensor } {
    const g = x.graph;
    return this.scoped(g, () => {
      const [, n, c] = x.shape as [unknown, number, number];
      if (n !== this.side * this.side) throw new RangeError(`${this.path}: GPSA expects the ${this.side}×${this.side} patch tokens, got ${n} tokens`);
      const h = this.numHeads;
      const d = this.headDim;
      const qk = transpose(reshape(this.qk.forward(x), [-1, n, 2, h, d]), [2, 0, 3, 1, 4]); // [2, B, H, N, hd]
      const part = (i: number) => reshape(slice(qk, [0], [i], [i + 1]), [-1, h, n, d]); // [B, H, N, hd]
      const content = softmaxScores(part(0), part(1)); // [B, H, N, N]
      // the position scores do not depend on the image: [N, N, 3] → [N, N, H] → [H, N, N]
      const position = softmax(transpose(this.posProj.forward(relativeConstant(g, this.side)), [2, 0, 1]), -1); // [H, N, N]
      const gate = sigmoid(reshape(this.p(g, 'gating_param'), [h, 1, 1])); // [H, 1, 1]
      const mixed = add(mul(content, sub(1, gate)), mul(position, gate)); // [B, H, N, N]
      let attn = div(mixed, sum(mixed, -1, true)); // renormalised by its row sum, as timm does
      let used = attn;
      if (laidOut) {
        const t = n + 1;
        const e00 = g.constant(Float32Array.from({ length: t * t }, (_, i) => (i === 0 ? 1 : 0)), [t, t], 'float32');
        attn = add(pad(attn, [0, 0, 1, 1, 0, 0, 0, 0]), e00); // [B, H, 1 + N, 1 + N]
        used = slice(attn, [2, 3], [1, 1], [t, t]); // [B, H, N, N], the same values
      }
      const v = transpose(reshape(this.v.forward(x), [-1, n, h, d]), [0, 2, 1, 3]); // [B, H, N, hd]
      const y = reshape(transpose(matmul(used, v), [0, 2, 1, 3]), [-1, n, c]); // [B, N, D]
      return { out: this.proj.forward(y), attn };
    });
  }
}

// ---- blocks -----------------------------------------------------------------------------------

/** timm's ConViT Block: x + attn(norm1(x)), then + mlp(norm2(x)); attn is GPSA or MHSA. */
export class ConvitBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: GPSA | Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(dim: number, numHeads: number, rng: Random, { gpsa, side, mlpRatio, qkvBias, localityStrength }:
    { gpsa: boolean; side: number; mlpRatio: number; qkvBias: boolean; localityStrength: number }) {
    super();
    this.norm1 = this.addChild('norm1', new LayerNorm(dim, LN_EPS));
    this.attn = this.addChild('attn', gpsa ? new GPSA(dim, numHeads, side, rng, { qkvBias, localityStrength }) : new Attention(dim, numHeads, rng, { qkvBias }));
    this.norm2 = this.addChild('norm2', new LayerNorm(dim, LN_EPS));
    this.mlp = this.addChild('mlp', new Mlp(dim, Math.floor(dim * mlpRatio), rng)); // timm: int(dim * mlp_ratio)
  }

  /** `residualScale`: drop-path's per-sample keep scales [B, 1, 1] of each branch; `laidOut`: see GPSA. */
  forwardWithAttention(x: Tensor, residualScale?: { attn: Tensor; mlp: Tensor }, laidOut = false): { out: Tensor; attn: Tensor } {
    const normed = this.norm1.forward(x);
    const { out: a, attn } = this.attn instanceof GPSA ? this.attn.forwardWithAttention(normed, laidOut) : this.attn.forwardWithAttention(normed);
    const g = x.graph;
    const scale = (t: Tensor, s?: Tensor) => (s ? this.scoped(g, () => mul(t, s)) : t);
    const x1 = this.scoped(g, () => add(x, scale(a, residualScale?.attn)));
    const m = this.mlp.forward(this.norm2.forward(x1));
    return { out: this.scoped(g, () => add(x1, scale(m, residualScale?.mlp))), attn };
  }
}

// ---- model ------------------------------------------------------------------------------------

export class ConVit extends ImageModel {
  readonly family = 'convit';
  readonly config: ConvitConfig;
  /** Token width: embedDim (per head) · numHeads. */
  readonly width: number;
  readonly patchEmbed: PatchEmbed;
  readonly blocks: ConvitBlock[];
  readonly norm: LayerNorm;
  readonly head?: Linear;

  constructor(config: Partial<ConvitConfig> = {}) {
    super();
    const c = (this.config = { ...convitDefaults, ...config });
    if (!(Number.isInteger(c.localUpToLayer) && c.localUpToLayer >= 0 && c.localUpToLayer < c.depth)) {
      throw new RangeError(`ConViT: local_up_to_layer (localUpToLayer) must be an integer in [0, depth − 1] = [0, ${c.depth - 1}] (the class token joins before that block), got ${c.localUpToLayer}`);
    }
    const d = (this.width = c.embedDim * c.numHeads);
    const rng = new Random(c.seed);
    this.patchEmbed = this.addChild('patch_embed', new PatchEmbed(c.imgSize, c.patchSize, c.inChans, d, rng));
    const [side] = this.patchEmbed.gridSize;
    this.addParam('cls_token', [1, 1, d], truncNormal(0.02), rng);
    if (c.usePosEmbed) this.addParam('pos_embed', [1, this.patchEmbed.numPatches, d], truncNormal(0.02), rng);
    this.blocks = Array.from({ length: c.depth }, (_, i) => this.addChild(`blocks.${i}`, new ConvitBlock(d, c.numHeads, rng,
      { gpsa: i < c.localUpToLayer, side, mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, localityStrength: c.localityStrength })));
    this.norm = this.addChild('norm', new LayerNorm(d, LN_EPS));
    if (c.numClasses > 0) this.head = this.addChild('head', new Linear(d, c.numClasses, rng));
  }

  get numFeatures(): number {
    return this.width;
  }

  /** drop_path [B, depth·2] (attention and MLP branch of each block, timm's linear rule) and head_drop [B, D]. */
  override noiseInputs(): NoiseInput[] {
    return dropNoiseInputs(this.config, this.config.depth, this.width);
  }

  /** timm's group_matcher: cls_token, pos_embed and patch_embed 0, block i → i + 1, norm and head → depth + 1. */
  layerGrouping(): LayerGrouping {
    return blockLayerGrouping(this.config.depth, /^(cls_token|pos_embed|patch_embed\.)/);
  }

  headKeys(): string[] {
    return ['head.weight', 'head.bias'];
  }

  /** Every block over the class token and the patch grid (GPSA blocks laid out as the file header says). */
  override tokenGrid(): TokenGrid {
    const c = this.config;
    return { grid: [...this.patchEmbed.gridSize] as [number, number], prefix: 1, pool: c.globalPool === 'avg' ? 'patch-mean' : 'cls', depth: c.depth, heads: c.numHeads };
  }

  /** timm's adapt_input_conv for another channel count; pos_embed is resampled on load. */
  override adaptPretrained(sd: StateDict): { state: StateDict; notes: string[] } {
    return adaptPatchEmbed(sd, this.config.inChans);
  }

  /** Images [B, C, H, W] → tokens [B, 1 + N, D] after the final norm. */
  forwardFeatures(x: Tensor, { noise, attentions }: ForwardOptions & { attentions?: Tensor[] } = {}): Tensor {
    const g = x.graph;
    const c = this.config;
    const dropPath = noise?.drop_path;
    let tokens = this.patchEmbed.forward(x); // [B, N, D]
    if (c.usePosEmbed) tokens = this.scoped(g, () => add(tokens, this.p(g, 'pos_embed'))); // pos_embed has no class slot
    this.blocks.forEach((block, i) => {
      if (i === c.localUpToLayer) {
        tokens = this.scoped(g, () => concat([expand(this.p(g, 'cls_token'), [BATCH, 1, this.width]), tokens], 1)); // [B, 1 + N, D]
      }
      const scale = dropPath && this.scoped(g, () => ({
        attn: reshape(slice(dropPath, [1], [2 * i], [2 * i + 1]), [-1, 1, 1]), // [B, 1, 1]
        mlp: reshape(slice(dropPath, [1], [2 * i + 1], [2 * i + 2]), [-1, 1, 1]),
      }));
      const out = block.forwardWithAttention(tokens, scale, attentions !== undefined);
      tokens = out.out;
      attentions?.push(out.attn);
    });
    return this.norm.forward(tokens);
  }

  /** Pooling and head: tokens [B, 1 + N, D] → logits [B, classes] (or the pooled features when headless). */
  forwardHead(tokens: Tensor, { noise }: ForwardOptions = {}): { logits: Tensor; features: Tensor } {
    const g = tokens.graph;
    const t = tokens.shape[1] as number;
    const features = this.scoped(g, () => (this.config.globalPool === 'avg'
      ? mean(slice(tokens, [1], [1], [t]), 1) // [B, D]
      : reshape(slice(tokens, [1], [0], [1]), [-1, this.width]))); // [B, D]
    const headDrop = noise?.head_drop;
    const dropped = headDrop ? this.scoped(g, () => mul(features, headDrop)) : features;
    return { logits: this.head ? this.head.forward(dropped) : dropped, features };
  }

  /** Loads a timm-layout state dict; a pos_embed for another grid is resampled (bicubic, antialiased) when `resamplePos` is set. */
  override loadStateDict(sd: StateDict, strict = true, { resamplePos = false } = {}): { missing: string[]; unexpected: string[] } {
    const pe = sd.pos_embed;
    const own = this.namedParameters().find(([k]) => k === 'pos_embed')?.[1];
    if (pe && own && resamplePos && pe.data.length !== own.data.length) {
      const oldN = pe.data.length / this.width;
      const side = Math.round(Math.sqrt(oldN));
      if (side * side !== oldN) throw new StateDictError(`pos_embed of shape [${pe.shape.join(', ')}] is not a square grid`);
      sd = { ...sd, pos_embed: { data: resamplePosEmbed(pe.data, this.width, [side, side], this.patchEmbed.gridSize, 0), shape: own.shape } };
    }
    return super.loadStateDict(sd, strict);
  }
}

// ---- checkpoints ------------------------------------------------------------------------------

/**
 * The architecture of a timm-layout ConViT state dict (timm's keys need no filter), or undefined
 * when it is not one: GPSA's gating_param in block 0 says it is. The image size comes from the
 * pos_embed grid; global_pool is not in the weights (timm's 'token' then).
 */
export function inferConvitConfig(sd: StateDict): Partial<ConvitConfig> | undefined {
  const gate = sd['blocks.0.attn.gating_param'];
  const pe = sd['patch_embed.proj.weight'];
  const fc1 = sd['blocks.0.mlp.fc1.weight'];
  if (!gate || !pe || !fc1) return undefined;
  const [width, inChans, patchSize] = pe.shape as [number, number, number];
  const numHeads = gate.shape[0]!;
  let depth = 0;
  while (`blocks.${depth}.norm1.weight` in sd) depth++;
  let localUpToLayer = 0;
  while (`blocks.${localUpToLayer}.attn.gating_param` in sd) localUpToLayer++;
  const pos = sd.pos_embed;
  const head = sd['head.weight'];
  return {
    ...(pos ? { imgSize: Math.round(Math.sqrt(pos.shape[1]!)) * patchSize } : {}), inChans, patchSize, embedDim: width / numHeads, depth, numHeads,
    mlpRatio: fc1.shape[0]! / width, qkvBias: 'blocks.0.attn.qk.bias' in sd, localUpToLayer, usePosEmbed: pos !== undefined, numClasses: head ? head.shape[0]! : 0,
  };
}

// ---- pretrained configs and registered entries ------------------------------------------------

/** timm's default_cfg for ConViT: ImageNet mean/std, bicubic, crop_pct 0.875 (the PretrainedCfg default), 224 fixed. */
const imagenet: PretrainedConfig = {
  inputSize: [3, 224, 224], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], interpolation: 'bicubic', cropPct: 0.875, numClasses: 1000,
};
const fashionMnist: PretrainedConfig = { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 };

export const convitEntries: ModelEntry[] = [];
function convit(name: string, config: Partial<ConvitConfig>, pretrained: PretrainedConfig, params?: number, description?: string) {
  convitEntries.push({ name, family: 'convit', config, pretrained, params, description });
}

//     name              per head        heads          GPSA blocks            α                              timm's params
convit('convit_tiny', { embedDim: 48, numHeads: 4, localUpToLayer: 10, localityStrength: 1 }, imagenet, 5_710_512);
convit('convit_small', { embedDim: 48, numHeads: 9, localUpToLayer: 10, localityStrength: 1 }, imagenet, 27_777_322);
convit('convit_base', { embedDim: 48, numHeads: 16, localUpToLayer: 10, localityStrength: 1 }, imagenet, 86_540_040);
// Small-image preset: a 7×7 grid, 4 heads of 24 (a 2×2 locality kernel), 4 GPSA blocks then 2 MHSA blocks as timm's entries end.
convit('convit_tiny_patch4_28', { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 24, numHeads: 4, depth: 6, localUpToLayer: 4, mlpRatio: 2 },
  fashionMnist, undefined, '28×28 grayscale (Fashion-MNIST, MNIST): 4 GPSA blocks, then the class token and 2 MHSA blocks');

registerFamily<ConvitConfig>({
  name: 'convit',
  defaults: convitDefaults,
  kwargsSchema: convitKwargsSchema,
  create: (config) => new ConVit(config),
  inferConfig: inferConvitConfig,
  // a 4×4 grid, 4 heads of 8: one GPSA block, then the class token and one MHSA block
  tinyArgs: { imgSize: 16, patchSize: 4, inChans: 3, numClasses: 5, embedDim: 8, numHeads: 4, depth: 2, localUpToLayer: 1, mlpRatio: 2 },
});
