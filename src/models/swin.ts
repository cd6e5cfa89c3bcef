/**
 * Swin Transformer — "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
 * (Liu et al. 2021, https://arxiv.org/abs/2103.14030) — as timm ≥ 0.9 builds it
 * (`swin_transformer.py`): patch embedding + LayerNorm, stages of window attention with a learned
 * relative position bias, every second block on windows shifted by half a window (with timm's
 * −100 mask between regions that the shift brought together), patch merging at the start of
 * stages 1–3, the final norm, average pooling and `head.fc`.
 *
 * Parameter names are timm's, so its state dicts load with no mapping; Microsoft's original
 * checkpoints and timm ≤ 0.6 ones (downsample at the end of stages, `head.weight`, saved index and
 * mask buffers) are remapped on load as timm's `checkpoint_filter_fn` does.
 *
 * Tokens travel as [B, H, W, C] (timm's NHWC); windows as [B·nW, w·w, C].
 */
import { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import { add, gather, matmul, mean, mT, mul, pad, reshape, slice, softmax, transpose } from '../ops/index.js';
import { Random } from '../random.js';
import { Module, type StateDict } from '../nn/module.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { Mlp } from '../nn/transformer.js';
import { PatchEmbed } from '../nn/patch_embed.js';
import { truncNormal } from '../nn/init.js';
import { adaptPatchEmbed, dropNoiseInputs } from './family_parts.js';
import type { ModelEntry, PretrainedConfig } from './registry.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type NoiseInput, type TokenGrid } from './model.js';
import { inferSwinConfig, swinCheckpointFilter } from '../checkpoint/layout_swin.js';

// the checkpoint filter and the window tables are part of the family's public surface
export { inferSwinConfig, swinCheckpointFilter, relativePositionIndex, shiftedWindowMask };
import { relativePositionIndex, roll, shiftedWindowMask, windowPartition, windowReverse } from './swin_windows.js';

export interface SwinConfig extends CommonModelArgs {
  patchSize: number;
  /** Channels of stage 0; stage i has embedDim · 2^i. */
  embedDim: number;
  /** Blocks per stage. */
  depths: readonly number[];
  /** Attention heads per stage. */
  numHeads: readonly number[];
  /** Window side; a stage whose resolution is not larger uses its resolution and no shift. */
  windowSize: number;
  mlpRatio: number;
  qkvBias: boolean;
  /** LayerNorm epsilon (PyTorch's nn.LayerNorm default, as timm's Swin uses). */
  eps: number;
}

export const swinDefaults: SwinConfig = {
  imgSize: 224, inChans: 3, numClasses: 1000, dropPathRate: 0.1, dropRate: 0, seed: 0,
  patchSize: 4, embedDim: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], windowSize: 7, mlpRatio: 4, qkvBias: true, eps: 1e-5,
};

const count = z.number().int().positive();
export const swinKwargsSchema = z.object({
  patchSize: count, embedDim: count, depths: z.array(count).min(1), numHeads: z.array(count).min(1), windowSize: count,
  mlpRatio: z.number().positive(), qkvBias: z.boolean(), eps: z.number().positive(),
}).partial().strict();

// ---- blocks ----------------------------------------------------------------------------------

/** W-MSA / SW-MSA: attention inside each window, plus a relative position bias per head. */
export class WindowAttention extends Module {
  readonly headDim: number;
  readonly qkv: Linear;
  readonly proj: Linear;
  private readonly index: BigInt64Array;

  constructor(readonly dim: number, readonly numHeads: number, readonly window: number, rng: Random, qkvBias: boolean) {
    super();
    if (dim % numHeads !== 0) throw new RangeError(`WindowAttention: dim ${dim} is not divisible by ${numHeads} heads`);
    this.headDim = dim / numHeads;
    this.addParam('relative_position_bias_table', [(2 * window - 1) ** 2, numHeads], truncNormal(0.02), rng);
    this.qkv = this.addChild('qkv', new Linear(dim, dim * 3, rng, { bias: qkvBias }));
    this.proj = this.addChild('proj', new Linear(dim, dim, rng));
    this.index = relativePositionIndex(window);
  }

  /** windows [B·nW, N, C], mask [nW, N, N] or none → [B·nW, N, C]. */
  forward(x: Tensor, mask?: { values: Float32Array; windows: number }): Tensor {
    return this.forwardWithAttention(x, mask).out;
  }

  /** Also returns the attention probabilities [B·nW, H, N, N]. */
  forwardWithAttention(x: Tensor, mask?: { values: Float32Array; windows: number }): { out: Tensor; attn: Tensor } {
    const g = x.graph;
    return this.scoped(g, () => {
      const [, n, c] = x.shape as [unknown, number, number];
      const h = this.numHeads;
      const d = this.headDim;
      const qkv = transpose(reshape(this.qkv.forward(x), [-1, n, 3, h, d]), [2, 0, 3, 1, 4]); // [3, B·nW, H, N, D]
      const part = (i: number) => reshape(slice(qkv, [0], [i], [i + 1]), [-1, h, n, d]); // [B·nW, H, N, D]
      const [q, k, v] = [part(0), part(1), part(2)];
      const table = this.p(g, 'relative_position_bias_table'); // [(2w−1)², H]
      const bias = transpose(reshape(gather(table, g.constant(this.index, [n * n], 'int64'), 0), [n, n, h]), [2, 0, 1]); // [H, N, N]
      let attn = add(matmul(mul(q, d ** -0.5), mT(k)), bias); // [B·nW, H, N, N]
      if (mask) {
        const nw = mask.windows;
        const m = g.constant(mask.values, [1, nw, 1, n, n], 'float32');
        attn = reshape(add(reshape(attn, [-1, nw, h, n, n]), m), [-1, h, n, n]);
      }
      const probs = softmax(attn, -1);
      const y = reshape(transpose(matmul(probs, v), [0, 2, 1, 3]), [-1, n, c]); // [B·nW, N, C]
      return { out: this.proj.forward(y), attn: probs };
    });
  }
}

export class SwinBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: WindowAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  /** Window side and shift after clamping to the stage's resolution. */
  readonly window: number;
  readonly shift: number;
  private readonly mask?: { values: Float32Array; windows: number };

  /**
   * `resolution` decides the clamping (timm's, halved with floor per stage); `size` is the side of
   * the tensor (halved with ceil: patch merging pads an odd map), which the mask covers.
   */
  constructor(dim: number, readonly resolution: number, readonly size: number, heads: number, window: number, shift: number, rng: Random, c: SwinConfig) {
    super();
    // timm: a stage not larger than the window is one window, unshifted
    this.window = resolution <= window ? resolution : window;
    this.shift = resolution <= window ? 0 : shift;
    this.norm1 = this.addChild('norm1', new LayerNorm(dim, c.eps));
    this.attn = this.addChild('attn', new WindowAttention(dim, heads, this.window, rng, c.qkvBias));
    this.norm2 = this.addChild('norm2', new LayerNorm(dim, c.eps));
    this.mlp = this.addChild('mlp', new Mlp(dim, Math.trunc(dim * c.mlpRatio), rng));
    if (this.shift > 0) {
      const padded = Math.ceil(size / this.window) * this.window;
      this.mask = { values: shiftedWindowMask(padded, padded, this.window, this.shift), windows: (padded / this.window) ** 2 };
    }
  }

  /** One window over the whole (unpadded) stage: its attention is global, and drawable as a map. */
  get global(): boolean {
    return this.shift === 0 && this.window === this.size;
  }

  /** Shift, pad to whole windows, attend per window, merge, unpad, shift back: [B, H, W, C] → same. */
  private windowAttention(x: Tensor, attentions?: Tensor[]): Tensor {
    const g = x.graph;
    const [, h, w] = x.shape as [unknown, number, number, number];
    const win = this.window;
    const s = this.shift;
    return this.scoped(g, () => {
      let shifted = s ? roll(roll(x, -s, 1), -s, 2) : x;
      // timm rolls first, then zero-pads bottom/right; the pad tokens are not masked
      const padH = (win - (h % win)) % win;
      const padW = (win - (w % win)) % win;
      if (padH || padW) shifted = pad(shifted, [0, 0, 0, 0, 0, padH, padW, 0]);
      const [hp, wp] = [h + padH, w + padW];
      const { out, attn } = this.attn.forwardWithAttention(windowPartition(shifted, win), this.mask); // [B·nW, N, C]
      attentions?.push(attn);
      let merged = windowReverse(out, win, hp, wp); // [B, Hp, Wp, C]
      if (padH || padW) merged = slice(merged, [1, 2], [0, 0], [h, w]);
      return s ? roll(roll(merged, s, 1), s, 2) : merged;
    });
  }

  /** x + attn(norm1(x)), then + mlp(norm2(x)); `scale` is drop-path's per-sample [B, 1, 1, 1] for each branch. */
  forward(x: Tensor, scale?: { attn: Tensor; mlp: Tensor }, attentions?: Tensor[]): Tensor {
    const g = x.graph;
    const branch = (t: Tensor, k?: Tensor) => (k ? this.scoped(g, () => mul(t, k)) : t);
    const x1 = this.scoped(g, () => add(x, branch(this.windowAttention(this.norm1.forward(x), attentions), scale?.attn)));
    const m = this.mlp.forward(this.norm2.forward(x1));
    return this.scoped(g, () => add(x1, branch(m, scale?.mlp)));
  }
}

/** Merges each 2×2 neighbourhood: [B, H, W, C] → LayerNorm(4C) → Linear(4C → 2C, no bias) → [B, H/2, W/2, 2C]. */
export class PatchMerging extends Module {
  readonly norm: LayerNorm;
  readonly reduction: Linear;

  constructor(readonly dim: number, outDim: number, rng: Random, eps: number) {
    super();
    this.norm = this.addChild('norm', new LayerNorm(4 * dim, eps));
    this.reduction = this.addChild('reduction', new Linear(4 * dim, outDim, rng, { bias: false }));
  }

  forward(x: Tensor): Tensor {
    const g = x.graph;
    const merged = this.scoped(g, () => {
      let [, h, w, c] = x.shape as [unknown, number, number, number];
      let y = x;
      if (h % 2 || w % 2) y = pad(y, [0, 0, 0, 0, 0, h % 2, w % 2, 0]);
      [h, w] = [h + (h % 2), w + (w % 2)];
      // timm's reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5): 4C ordered (column offset, row offset, channel)
      return reshape(transpose(reshape(y, [-1, h / 2, 2, w / 2, 2, c]), [0, 1, 3, 4, 2, 5]), [-1, h / 2, w / 2, 4 * c]);
    });
    return this.reduction.forward(this.norm.forward(merged));
  }
}

/** One stage: patch merging (stages 1…), then its blocks, alternately unshifted and shifted. */
export class SwinStage extends Module {
  readonly downsample?: PatchMerging;
  readonly blocks: SwinBlock[];

  constructor(inDim: number, readonly dim: number, readonly resolution: number, size: number, depth: number, heads: number, downsample: boolean, rng: Random, c: SwinConfig) {
    super();
    if (downsample) this.downsample = this.addChild('downsample', new PatchMerging(inDim, dim, rng, c.eps));
    this.blocks = Array.from({ length: depth }, (_, i) =>
      this.addChild(`blocks.${i}`, new SwinBlock(dim, resolution, size, heads, c.windowSize, i % 2 === 0 ? 0 : Math.floor(c.windowSize / 2), rng, c)));
  }
}

// ---- model -----------------------------------------------------------------------------------

/** timm's PatchEmbed with a norm and NHWC output: [B, C, H, W] → [B, H/p, W/p, D]. */
class SwinPatchEmbed extends PatchEmbed {
  readonly norm: LayerNorm;

  constructor(c: SwinConfig, rng: Random) {
    super(c.imgSize, c.patchSize, c.inChans, c.embedDim, rng);
    this.norm = this.addChild('norm', new LayerNorm(c.embedDim, c.eps));
  }

  forwardNhwc(x: Tensor): Tensor {
    const [gh, gw] = this.gridSize;
    const tokens = this.norm.forward(this.forward(x)); // [B, N, D]
    return this.scoped(x.graph, () => reshape(tokens, [-1, gh, gw, this.embedDim]));
  }
}

export class SwinTransformer extends ImageModel {
  readonly family = 'swin';
  readonly config: SwinConfig;
  readonly patchEmbed: SwinPatchEmbed;
  readonly layers: SwinStage[];
  readonly norm: LayerNorm;
  readonly head?: Linear;
  private readonly totalDepth: number;

  constructor(config: Partial<SwinConfig> = {}) {
    super();
    const c = (this.config = { ...swinDefaults, ...config });
    if (c.depths.length !== c.numHeads.length) throw new RangeError(`swin: depths [${c.depths.join(', ')}] and num_heads [${c.numHeads.join(', ')}] need one entry per stage`);
    const rng = new Random(c.seed);
    this.patchEmbed = this.addChild('patch_embed', new SwinPatchEmbed(c, rng));
    // timm clamps each stage's window by the grid halved with floor; the tensor is halved with ceil
    let [resolution, size] = [this.patchEmbed.gridSize[0], this.patchEmbed.gridSize[0]];
    let inDim = c.embedDim;
    this.layers = c.depths.map((depth, i) => {
      if (i > 0) [resolution, size] = [Math.floor(resolution / 2), Math.ceil(size / 2)];
      const dim = c.embedDim * 2 ** i;
      const stage = this.addChild(`layers.${i}`, new SwinStage(inDim, dim, resolution, size, depth, c.numHeads[i]!, i > 0, rng, c));
      inDim = dim;
      return stage;
    });
    this.totalDepth = c.depths.reduce((a, b) => a + b, 0);
    this.norm = this.addChild('norm', new LayerNorm(this.numFeatures, c.eps));
    if (c.numClasses > 0) this.head = this.addChild('head.fc', new Linear(this.numFeatures, c.numClasses, rng));
  }

  get numFeatures(): number {
    return this.config.embedDim * 2 ** (this.config.depths.length - 1);
  }

  /** drop_path [B, blocks·2] (timm's rate rising linearly over all blocks of all stages) and head_drop [B, D]. */
  override noiseInputs(): NoiseInput[] {
    return dropNoiseInputs(this.config, this.totalDepth, this.numFeatures);
  }

  /**
   * The last stage, when each of its blocks attends over the whole stage in one window (as in
   * every registered Swin: 7×7 at 224 with window 7): attention maps over that grid, rolled out
   * over its blocks. Earlier stages attend within windows only.
   */
  override tokenGrid(): TokenGrid | undefined {
    const last = this.layers[this.layers.length - 1]!;
    if (!last.blocks.every((b) => b.global)) return undefined;
    const r = last.blocks[0]!.resolution;
    return { grid: [r, r], prefix: 0, pool: 'patch-mean', depth: last.blocks.length, heads: this.config.numHeads[this.layers.length - 1]! };
  }

  /** Images [B, C, H, W] → normalised features [B, H', W', D]; `attentions` collects the last stage's (see tokenGrid). */
  forwardFeatures(x: Tensor, { noise, attentions }: ForwardOptions & { attentions?: Tensor[] } = {}): Tensor {
    const lastStage = this.layers[this.layers.length - 1];
    const collect = attentions && this.tokenGrid() ? attentions : undefined;
    const g = x.graph;
    const dropPath = noise?.drop_path;
    let h = this.patchEmbed.forwardNhwc(x);
    let block = 0;
    for (const stage of this.layers) {
      if (stage.downsample) h = stage.downsample.forward(h);
      for (const b of stage.blocks) {
        const i = block++;
        const scale = dropPath && this.scoped(g, () => ({
          attn: reshape(slice(dropPath, [1], [2 * i], [2 * i + 1]), [-1, 1, 1, 1]), // [B, 1, 1, 1]
          mlp: reshape(slice(dropPath, [1], [2 * i + 1], [2 * i + 2]), [-1, 1, 1, 1]),
        }));
        h = b.forward(h, scale, stage === lastStage ? collect : undefined);
      }
    }
    return this.norm.forward(h);
  }

  /** Average over H'·W', dropout, head.fc. */
  forwardHead(features: Tensor, { noise }: ForwardOptions = {}): { logits: Tensor; features: Tensor } {
    const g = features.graph;
    const pooled = this.scoped(g, () => mean(features, [1, 2])); // [B, D]
    const headDrop = noise?.head_drop;
    const dropped = headDrop ? this.scoped(g, () => mul(pooled, headDrop)) : pooled;
    return { logits: this.head ? this.head.forward(dropped) : dropped, features: pooled };
  }

  /** timm's group_matcher: the stem 0, blocks numbered through the stages (a stage's downsample with its first block), then norm and head. */
  layerGrouping(): LayerGrouping {
    const starts = this.config.depths.map((_, i) => this.config.depths.slice(0, i).reduce((a, b) => a + b, 0));
    const total = this.totalDepth;
    return {
      blocks: total,
      layerOf(key) {
        if (key.startsWith('patch_embed.')) return 0;
        const m = /^layers\.(\d+)\.(?:blocks\.(\d+)|downsample)\./.exec(key);
        if (m) return starts[Number(m[1])]! + Number(m[2] ?? 0) + 1;
        return total + 1;
      },
    };
  }

  headKeys(): string[] {
    return ['head.fc.weight', 'head.fc.bias'];
  }

  override adaptPretrained(sd: StateDict): { state: StateDict; notes: string[] } {
    return adaptPatchEmbed(sd, this.config.inChans);
  }

  /** Loads timm ≥ 0.9 keys, or remaps Microsoft's / timm ≤ 0.6 layout first (see `swinCheckpointFilter`). */
  override loadStateDict(sd: StateDict, strict = true): { missing: string[]; unexpected: string[] } {
    return super.loadStateDict(swinCheckpointFilter(sd), strict);
  }
}

// ---- pretrained configs and registered entries --------------------------------------------------

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];
const imagenet = (size: number): PretrainedConfig => ({ inputSize: [3, size, size], mean: IMAGENET_MEAN, std: IMAGENET_STD, interpolation: 'bicubic', cropPct: size === 224 ? 0.9 : 1, numClasses: 1000 });

export const swinEntries: ModelEntry[] = [];
function swin(name: string, config: Partial<SwinConfig>, pretrained: PretrainedConfig, params?: number, description?: string) {
  swinEntries.push({ name, family: 'swin', config, pretrained, params, description });
}

//   name                              patch / window             dim             depths                    heads                        timm's params
swin('swin_tiny_patch4_window7_224', { patchSize: 4, windowSize: 7, embedDim: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24] }, imagenet(224), 28_288_354);
swin('swin_small_patch4_window7_224', { patchSize: 4, windowSize: 7, embedDim: 96, depths: [2, 2, 18, 2], numHeads: [3, 6, 12, 24] }, imagenet(224), 49_606_258);
swin('swin_base_patch4_window7_224', { patchSize: 4, windowSize: 7, embedDim: 128, depths: [2, 2, 18, 2], numHeads: [4, 8, 16, 32] }, imagenet(224), 87_768_224);
swin('swin_base_patch4_window12_384', { imgSize: 384, patchSize: 4, windowSize: 12, embedDim: 128, depths: [2, 2, 18, 2], numHeads: [4, 8, 16, 32] }, imagenet(384), 87_903_584);
// Small-image presets.
swin('swin_nano_patch2_window7_28', { imgSize: 28, inChans: 1, numClasses: 10, patchSize: 2, windowSize: 7, embedDim: 48, depths: [2, 4], numHeads: [3, 6], mlpRatio: 2 },
  { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 }, undefined,
  '28×28 grayscale (Fashion-MNIST, MNIST): 14×14 tokens in 7×7 shifted windows, then one 7×7 window');
swin('swin_nano_patch2_window4_32', { imgSize: 32, inChans: 3, numClasses: 10, patchSize: 2, windowSize: 4, embedDim: 48, depths: [2, 2, 2], numHeads: [3, 6, 12], mlpRatio: 2 },
  { inputSize: [3, 32, 32], mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], interpolation: 'bilinear', cropPct: 1, numClasses: 10 }, undefined,
  '32×32 RGB (CIFAR-10/100): 16×16 tokens in 4×4 shifted windows, three stages');

// ---- family ---------------------------------------------------------------------------------------

registerFamily<SwinConfig>({
  name: 'swin',
  defaults: swinDefaults,
  kwargsSchema: swinKwargsSchema,
  create: (config) => new SwinTransformer(config),
  // 16×16 at patch 2: stages of 8×8 (window 4, shifted) and 4×4 (window clamped to the stage)
  inferConfig: inferSwinConfig,
  tinyArgs: { imgSize: 16, patchSize: 2, inChans: 3, numClasses: 5, embedDim: 16, depths: [2, 2], numHeads: [2, 4], windowSize: 4, mlpRatio: 2, dropPathRate: 0 },
});
