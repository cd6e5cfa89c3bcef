/**
 * MobileViT — "MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer"
 * (Mehta & Rastegari 2022, https://arxiv.org/abs/2110.02178), and v2 — "Separable Self-attention
 * for Mobile Vision Transformers" (Mehta & Rastegari 2022, https://arxiv.org/abs/2206.02680).
 *
 * A MobileNetV2 network (inverted residuals) whose last three stages end in a MobileViT block: a
 * local k×k conv, a 1×1 projection to the transformer width, then transformers over *pixels that
 * sit at the same place in their p×p patch* (v1: sequences of the N patches for each of the P
 * pixel positions), folded back into a feature map, projected back and fused with the block input.
 *
 * Layout, semantics and initialisation follow timm's `mobilevit.py` on `byobnet.py` (ByobNet),
 * so a timm state dict loads with no mapping:
 * - `stem.{conv,bn}` (3×3 stride 2), `stages.S.J.{conv1_1x1,conv2_kxk,conv3_1x1}.{conv,bn}` for the
 *   inverted residuals (timm's bottleneck with bottle_in and linear_out: expansion of the *input*
 *   width, depthwise k×k, linear 1×1 out; a residual only when width and stride stay, since the
 *   MobileViT configs have downsample=''), then the MobileViT block `stages.S.J` with `conv_kxk`,
 *   `conv_1x1`, `transformer.K`, `norm`, `conv_proj` and (v1) `conv_fusion`; v1 ends in
 *   `final_conv`; the head is global average pooling and `head.fc`.
 * - Conv-BN-act everywhere (timm's ConvNormAct: conv without bias, BatchNorm eps 1e-5 momentum
 *   0.1 with `num_batches_tracked`, SiLU). `ForwardOptions.train` reaches every BatchNorm.
 * - v1 transformer blocks are timm's ViT blocks with SiLU in the MLP (ratio 2), 4 heads, LayerNorm
 *   eps 1e-5 (nn.LayerNorm's default). v2 blocks are linear self-attention over [B, C, P, N] with
 *   GroupNorm(1) and 1×1-conv MLPs.
 * - Init as ByobNet's `_init_weights`: conv weights N(0, √(2 / fan_out)) with fan_out =
 *   k·k·out/groups and zero biases, Linear N(0, 0.01) with zero biases, norms at 1 / 0; with
 *   `zeroInitLast` (timm's default), conv3_1x1.bn.weight is 0 in blocks with an identity shortcut.
 * - Stochastic depth as timm: rates linear over all blocks of all stages (stage-wise lists), each
 *   MobileViT block's rate shared by all its transformer blocks (two branches each).
 *
 * No token grid (`tokenGrid()` is undefined): the attention runs over N patches separately for
 * each of the P pixel positions, block by block at three resolutions, so there is no one map of
 * image tokens to roll out. Gradient saliency works as for every family.
 */
import { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import { add, concat, conv2d, mean, mul, relu, reshape, resizeBilinear, silu, slice, softmax, sum, transpose } from '../ops/index.js';
import { Random } from '../random.js';
import { Module, type StateDict } from '../nn/module.js';
import { BatchNorm2d, Conv2d, GroupNorm, LayerNorm, Linear } from '../nn/layers.js';
import { Attention } from '../nn/transformer.js';
import { normal, zeros } from '../nn/init.js';
import { dropoutScales } from '../nn/drop_path.js';
import { adaptInputConv } from './adapt_input.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type NoiseInput } from './model.js';
import type { ModelEntry, PretrainedConfig } from './registry.js';

export interface MobileVitConfig extends CommonModelArgs {
  /** 1: MobileViT (multi-head attention over patches, conv_fusion, final_conv); 2: MobileViTv2 (linear attention). */
  version: 1 | 2;
  stemChs: number;
  /** Per stage (timm's ByoBlockCfg rows): output width, stride of the first block, inverted residual blocks, their expansion ratio. */
  channels: number[];
  strides: number[];
  depths: number[];
  bottleRatios: number[];
  /** Per stage: transformer blocks of the stage's MobileViT block; 0 means the stage has none. */
  transformerDepths: number[];
  /** v1, per stage: the transformer width (ignored where transformerDepths is 0). v2 uses make_divisible(transformerRatio · width). */
  transformerDims: number[];
  /** v2: transformer width over the block width (timm's br = 0.5). */
  transformerRatio: number;
  /** Side of the patch whose pixels the transformer sees as separate sequences. */
  patchSize: number;
  /** v1 attention heads. */
  numHeads: number;
  mlpRatio: number;
  /** Width of v1's final 1×1 conv-BN-SiLU; 0 for none (v2). */
  numFeatures: number;
  /** timm's zero_init_last: conv3_1x1.bn.weight at 0 in residual inverted-residual blocks. */
  zeroInitLast: boolean;
}

/** mobilevit_s. */
export const mobilevitDefaults: MobileVitConfig = {
  imgSize: 256, inChans: 3, numClasses: 1000, version: 1, stemChs: 16,
  channels: [32, 64, 96, 128, 160], strides: [1, 2, 2, 2, 2], depths: [1, 3, 1, 1, 1], bottleRatios: [4, 4, 4, 4, 4],
  transformerDepths: [0, 0, 2, 4, 3], transformerDims: [0, 0, 144, 192, 240], transformerRatio: 0.5,
  patchSize: 2, numHeads: 4, mlpRatio: 2, numFeatures: 640, zeroInitLast: true, dropPathRate: 0, dropRate: 0, seed: 0,
};

const count = z.number().int().positive();
const counts = z.array(z.number().int().nonnegative()).min(1);
export const mobilevitKwargsSchema = z.object({
  version: z.union([z.literal(1), z.literal(2)]), stemChs: count, channels: z.array(count).min(1), strides: z.array(count).min(1),
  depths: counts, bottleRatios: z.array(z.number().positive()).min(1), transformerDepths: counts, transformerDims: counts,
  transformerRatio: z.number().positive(), patchSize: count, numHeads: count, mlpRatio: z.number().positive(),
  numFeatures: z.number().int().nonnegative(), zeroInitLast: z.boolean(),
}).partial().strict();

const BN_EPS = 1e-5;
const LN_EPS = 1e-5;
const DROP_PATH_SALT = 0xd209;
const HEAD_DROP_SALT = 0xd20b;

/** timm's make_divisible(v, 8): the nearest multiple of 8, not below 90% of v. */
export function makeDivisible(v: number, divisor = 8): number {
  const out = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return out < 0.9 * v ? out + divisor : out;
}

// ---- layers -----------------------------------------------------------------------------------

type Train = { train?: boolean };

/** A conv with ByobNet's init: N(0, √(2 / fan_out)), fan_out = k·k·out / groups; bias (if any) 0. */
class ByobConv extends Conv2d {
  constructor(inChans: number, outChans: number, kernel: number, rng: Random, opts: { stride?: number; groups?: number; bias?: boolean } = {}) {
    const { stride = 1, groups = 1, bias = false } = opts;
    super(inChans, outChans, kernel, rng, { stride, groups, bias, padding: Math.floor(((stride - 1) + (kernel - 1)) / 2) }); // timm's get_padding
    this.addParam('weight', [outChans, inChans / groups, kernel, kernel], normal(Math.sqrt(2 / ((kernel * kernel * outChans) / groups))), rng);
    if (bias) this.addParam('bias', [outChans], zeros());
  }
}

/** timm's ConvNormAct: conv (no bias) → BatchNorm → SiLU (or no activation). Keys `conv`, `bn`. */
export class ConvNormAct extends Module {
  readonly conv: ByobConv;
  readonly bn: BatchNorm2d;
  private readonly act: boolean;

  constructor(inChans: number, outChans: number, kernel: number, rng: Random, { stride = 1, groups = 1, act = true } = {}) {
    super();
    this.conv = this.addChild('conv', new ByobConv(inChans, outChans, kernel, rng, { stride, groups }));
    this.bn = this.addChild('bn', new BatchNorm2d(outChans, { eps: BN_EPS }));
    this.act = act;
  }

  forward(x: Tensor, { train }: Train = {}): Tensor {
    const y = this.bn.forward(this.conv.forward(x), { train });
    return this.act ? this.scoped(x.graph, () => silu(y)) : y;
  }
}

/** A residual branch times its drop-path keep scales ([B, 1, 1, 1] for maps, [B·P, 1, 1] for v1 sequences), if any. */
const scaled = (t: Tensor, s: Tensor | undefined): Tensor => (s ? mul(t, s) : t);

// ---- inverted residual (MobileNetV2) ----------------------------------------------------------

/**
 * timm's BottleneckBlock with bottle_in and linear_out: 1×1 expand (×ratio of the input width) →
 * depthwise k×k (stride) → linear 1×1, plus the input when width and stride stay. Drop path
 * applies to the branch whether or not there is a shortcut (timm's forward), so a block without
 * one has a drop-path column too (its rate is 0 only for the very first block).
 */
export class InvertedResidual extends Module {
  readonly conv1_1x1: ConvNormAct;
  readonly conv2_kxk: ConvNormAct;
  readonly conv3_1x1: ConvNormAct;
  readonly residual: boolean;

  constructor(inChans: number, outChans: number, stride: number, bottleRatio: number, rng: Random, zeroInitLast: boolean) {
    super();
    const mid = makeDivisible(inChans * bottleRatio);
    this.conv1_1x1 = this.addChild('conv1_1x1', new ConvNormAct(inChans, mid, 1, rng));
    this.conv2_kxk = this.addChild('conv2_kxk', new ConvNormAct(mid, mid, 3, rng, { stride, groups: mid }));
    this.conv3_1x1 = this.addChild('conv3_1x1', new ConvNormAct(mid, outChans, 1, rng, { act: false }));
    this.residual = inChans === outChans && stride === 1;
    if (this.residual && zeroInitLast) this.conv3_1x1.bn.parameters()[0]!.data.fill(0); // bn.weight
  }

  /** [B, C, H, W] → [B, C', H/s, W/s]; `scale`: the branch's drop-path keep scales [B, 1, 1, 1]. */
  forward(x: Tensor, { train, scale }: Train & { scale?: Tensor } = {}): Tensor {
    const y = this.conv3_1x1.forward(this.conv2_kxk.forward(this.conv1_1x1.forward(x, { train }), { train }), { train });
    if (!scale && !this.residual) return y;
    return this.scoped(x.graph, () => (this.residual ? add(scaled(y, scale), x) : scaled(y, scale)));
  }
}

// ---- v1: transformer over patches --------------------------------------------------------------

/**
 * fc1 → SiLU → fc2. v1's MLP over tokens (fc = Linear) and timm's ConvMlp of v2 (fc = 1×1 conv,
 * over [B, D, P, N]) differ only in the layer.
 */
export class SiluMlp<L extends Module & { forward(x: Tensor): Tensor }> extends Module {
  readonly fc1: L;
  readonly fc2: L;

  constructor(fc1: L, fc2: L) {
    super();
    this.fc1 = this.addChild('fc1', fc1);
    this.fc2 = this.addChild('fc2', fc2);
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.scoped(x.graph, () => silu(this.fc1.forward(x))));
  }
}

/** timm's ViT Block with a SiLU MLP: x + attn(norm1(x)), then + mlp(norm2(x)). */
export class TransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: SiluMlp<Linear>;

  constructor(dim: number, numHeads: number, mlpRatio: number, rng: Random) {
    super();
    this.norm1 = this.addChild('norm1', new LayerNorm(dim, LN_EPS));
    this.attn = this.addChild('attn', new Attention(dim, numHeads, rng, { qkvBias: true }));
    this.norm2 = this.addChild('norm2', new LayerNorm(dim, LN_EPS));
    const hidden = Math.floor(dim * mlpRatio);
    this.mlp = this.addChild('mlp', new SiluMlp(new Linear(dim, hidden, rng, { std: 0.01 }), new Linear(hidden, dim, rng, { std: 0.01 })));
    // ByobNet's init reaches the attention's Linears too: N(0, 0.01)
    for (const lin of [this.attn.qkv, this.attn.proj]) lin.namedParameters()[0]![1].data = normal(0.01)(lin.inFeatures * lin.outFeatures, new Random(rng.nextU32()));
  }

  /** [B·P, N, D] → [B·P, N, D]; `scale`: each branch's keep scales [B·P, 1, 1]. */
  forward(x: Tensor, scale?: { attn: Tensor; mlp: Tensor }): Tensor {
    const g = x.graph;
    const a = this.attn.forward(this.norm1.forward(x));
    const x1 = this.scoped(g, () => add(x, scaled(a, scale?.attn)));
    const m = this.mlp.forward(this.norm2.forward(x1));
    return this.scoped(g, () => add(x1, scaled(m, scale?.mlp)));
  }
}

/**
 * The patch geometry of a feature map: a size that is not a multiple of the patch is resized
 * (bilinearly) to the next multiple, as timm does (v1: align_corners false, and back after the
 * fold; v2: align_corners true, kept).
 */
function patchGrid(h: number, w: number, p: number) {
  const [nh, nw] = [Math.ceil(h / p), Math.ceil(w / p)];
  return { nh, nw, newH: nh * p, newW: nw * p, resized: nh * p !== h || nw * p !== w };
}

/** Per-sample keep scales [B, k] → the scale of branch i repeated for every sequence of the sample. */
function branchScale(noise: Tensor | undefined, slot: number, repeat: number, rank: number): Tensor | undefined {
  if (!noise) return undefined;
  const s = slice(noise, [1], [slot], [slot + 1]); // [B, 1]
  if (repeat === 1) return reshape(s, [-1, ...new Array<number>(rank - 1).fill(1)]);
  // v1 sequences are indexed b·P + p: each sample's scale repeated P times along the batch axis
  return reshape(concat(new Array<Tensor>(repeat).fill(s), 1), [-1, ...new Array<number>(rank - 1).fill(1)]); // [B·P, 1, …]
}

export class MobileVitBlock extends Module {
  readonly conv_kxk: ConvNormAct;
  readonly conv_1x1: ByobConv;
  readonly transformer: TransformerBlock[];
  readonly norm: LayerNorm;
  readonly conv_proj: ConvNormAct;
  readonly conv_fusion: ConvNormAct;

  constructor(readonly chans: number, readonly dim: number, depth: number, readonly patch: number, numHeads: number, mlpRatio: number, rng: Random) {
    super();
    this.conv_kxk = this.addChild('conv_kxk', new ConvNormAct(chans, chans, 3, rng)); // a full 3×3 conv (timm's gs None)
    this.conv_1x1 = this.addChild('conv_1x1', new ByobConv(chans, dim, 1, rng)); // no bias, no norm
    this.transformer = Array.from({ length: depth }, (_, k) => this.addChild(`transformer.${k}`, new TransformerBlock(dim, numHeads, mlpRatio, rng)));
    this.norm = this.addChild('norm', new LayerNorm(dim, LN_EPS));
    this.conv_proj = this.addChild('conv_proj', new ConvNormAct(dim, chans, 1, rng));
    this.conv_fusion = this.addChild('conv_fusion', new ConvNormAct(2 * chans, chans, 3, rng)); // over [input, conv_proj]
  }

  /** [B, C, H, W] → [B, C, H, W]; `noise`/`slot`: drop-path scales [B, k] and this block's first column. */
  forward(x: Tensor, { train, noise, slot = 0 }: Train & { noise?: Tensor; slot?: number } = {}): Tensor {
    const g = x.graph;
    const [, , h, w] = x.shape as [unknown, number, number, number];
    const p = this.patch;
    const d = this.dim;
    const { nh, nw, newH, newW, resized } = patchGrid(h, w, p);
    const local = this.conv_1x1.forward(this.conv_kxk.forward(x, { train })); // [B, D, H, W]
    // unfold: sequence b·P + (py·p + px) holds patch n = ih·nw + iw at pixel (py, px) of its patch
    let tokens = this.scoped(g, () => {
      const m = resized ? resizeBilinear(local, [newH, newW], false) : local; // [B, D, nh·p, nw·p]
      const t = transpose(reshape(m, [-1, d, nh, p, nw, p]), [0, 3, 5, 2, 4, 1]); // [B, py, px, ih, iw, D]
      return reshape(t, [-1, nh * nw, d]); // [B·P, N, D]
    });
    this.transformer.forEach((block, k) => {
      const scale = noise && this.scoped(g, () => ({
        attn: branchScale(noise, slot + 2 * k, p * p, 3)!, mlp: branchScale(noise, slot + 2 * k + 1, p * p, 3)!,
      }));
      tokens = block.forward(tokens, scale);
    });
    tokens = this.norm.forward(tokens);
    // fold: the exact inverse of the unfold
    const folded = this.scoped(g, () => {
      const t = transpose(reshape(tokens, [-1, p, p, nh, nw, d]), [0, 5, 3, 1, 4, 2]); // [B, D, ih, py, iw, px]
      const m = reshape(t, [-1, d, newH, newW]); // [B, D, nh·p, nw·p]
      return resized ? resizeBilinear(m, [h, w], false) : m; // [B, D, H, W]
    });
    const proj = this.conv_proj.forward(folded, { train }); // [B, C, H, W]
    const fused = this.scoped(g, () => concat([x, proj], 1)); // [B, 2C, H, W]
    return this.conv_fusion.forward(fused, { train });
  }

  /** Drop-path columns: two per transformer block. */
  get slots(): number {
    return 2 * this.transformer.length;
  }
}

// ---- v2: separable (linear) self-attention -------------------------------------------------------

/** MobileViTv2's attention over [B, C, P, N]: one query score per patch, softmax over N, a context vector per pixel position. */
export class LinearSelfAttention extends Module {
  readonly qkv_proj: ByobConv;
  readonly out_proj: ByobConv;

  constructor(readonly dim: number, rng: Random) {
    super();
    this.qkv_proj = this.addChild('qkv_proj', new ByobConv(dim, 1 + 2 * dim, 1, rng, { bias: true }));
    this.out_proj = this.addChild('out_proj', new ByobConv(dim, dim, 1, rng, { bias: true }));
  }

  forward(x: Tensor): Tensor {
    const qkv = this.qkv_proj.forward(x); // [B, 1 + 2D, P, N]
    const y = this.scoped(x.graph, () => {
      const d = this.dim;
      const q = slice(qkv, [1], [0], [1]); // [B, 1, P, N]
      const k = slice(qkv, [1], [1], [1 + d]); // [B, D, P, N]
      const v = slice(qkv, [1], [1 + d], [1 + 2 * d]); // [B, D, P, N]
      const context = sum(mul(k, softmax(q, -1)), -1, true); // [B, D, P, 1]
      return mul(relu(v), context); // [B, D, P, N]
    });
    return this.out_proj.forward(y);
  }
}

/** timm's LinearTransformerBlock: x + attn(norm1(x)), then + mlp(norm2(x)), with GroupNorm(1) as the norms. */
export class LinearTransformerBlock extends Module {
  readonly norm1: GroupNorm;
  readonly attn: LinearSelfAttention;
  readonly norm2: GroupNorm;
  readonly mlp: SiluMlp<ByobConv>;

  constructor(dim: number, mlpRatio: number, rng: Random) {
    super();
    this.norm1 = this.addChild('norm1', new GroupNorm(1, dim, 1e-5));
    this.attn = this.addChild('attn', new LinearSelfAttention(dim, rng));
    this.norm2 = this.addChild('norm2', new GroupNorm(1, dim, 1e-5));
    const hidden = Math.floor(dim * mlpRatio);
    this.mlp = this.addChild('mlp', new SiluMlp(new ByobConv(dim, hidden, 1, rng, { bias: true }), new ByobConv(hidden, dim, 1, rng, { bias: true })));
  }

  /** [B, D, P, N] → [B, D, P, N]; `scale`: each branch's keep scales [B, 1, 1, 1]. */
  forward(x: Tensor, scale?: { attn: Tensor; mlp: Tensor }): Tensor {
    const g = x.graph;
    const a = this.attn.forward(this.norm1.forward(x));
    const x1 = this.scoped(g, () => add(x, scaled(a, scale?.attn)));
    const m = this.mlp.forward(this.norm2.forward(x1));
    return this.scoped(g, () => add(x1, scaled(m, scale?.mlp)));
  }
}

export class MobileVitV2Block extends Module {
  readonly conv_kxk: ConvNormAct;
  readonly conv_1x1: ByobConv;
  readonly transformer: LinearTransformerBlock[];
  readonly norm: GroupNorm;
  readonly conv_proj: ConvNormAct;

  constructor(readonly chans: number, readonly dim: number, depth: number, readonly patch: number, mlpRatio: number, rng: Random) {
    super();
    this.conv_kxk = this.addChild('conv_kxk', new ConvNormAct(chans, chans, 3, rng, { groups: chans })); // depthwise (timm's gs 1)
    this.conv_1x1 = this.addChild('conv_1x1', new ByobConv(chans, dim, 1, rng));
    this.transformer = Array.from({ length: depth }, (_, k) => this.addChild(`transformer.${k}`, new LinearTransformerBlock(dim, mlpRatio, rng)));
    this.norm = this.addChild('norm', new GroupNorm(1, dim, 1e-5));
    this.conv_proj = this.addChild('conv_proj', new ConvNormAct(dim, chans, 1, rng, { act: false }));
  }

  /** [B, C, H, W] → [B, C, H', W'] (H' the next multiple of the patch: v2 does not resize back). */
  forward(x: Tensor, { train, noise, slot = 0 }: Train & { noise?: Tensor; slot?: number } = {}): Tensor {
    const g = x.graph;
    const [, , h, w] = x.shape as [unknown, number, number, number];
    const p = this.patch;
    const d = this.dim;
    const { nh, nw, newH, newW, resized } = patchGrid(h, w, p);
    const input = resized ? this.scoped(g, () => resizeBilinear(x, [newH, newW], true)) : x;
    const local = this.conv_1x1.forward(this.conv_kxk.forward(input, { train })); // [B, D, H', W']
    let tokens = this.scoped(g, () => {
      const t = transpose(reshape(local, [-1, d, nh, p, nw, p]), [0, 1, 3, 5, 2, 4]); // [B, D, py, px, ih, iw]
      return reshape(t, [-1, d, p * p, nh * nw]); // [B, D, P, N]
    });
    this.transformer.forEach((block, k) => {
      const scale = noise && this.scoped(g, () => ({ attn: branchScale(noise, slot + 2 * k, 1, 4)!, mlp: branchScale(noise, slot + 2 * k + 1, 1, 4)! }));
      tokens = block.forward(tokens, scale);
    });
    tokens = this.norm.forward(tokens);
    const folded = this.scoped(g, () => {
      const t = transpose(reshape(tokens, [-1, d, p, p, nh, nw]), [0, 1, 4, 2, 5, 3]); // [B, D, ih, py, iw, px]
      return reshape(t, [-1, d, newH, newW]); // [B, D, H', W']
    });
    return this.conv_proj.forward(folded, { train });
  }

  get slots(): number {
    return 2 * this.transformer.length;
  }
}

// ---- model ------------------------------------------------------------------------------------

type StageBlock = InvertedResidual | MobileVitBlock | MobileVitV2Block;

export class MobileVit extends ImageModel {
  readonly family = 'mobilevit';
  readonly config: MobileVitConfig;
  readonly stem: ConvNormAct;
  readonly stages: StageBlock[][];
  readonly finalConv?: ConvNormAct;
  readonly head?: Linear;
  /** Drop-path rate of each block (timm's stage-wise linspace over every block). */
  readonly blockRates: number[];

  constructor(config: Partial<MobileVitConfig> = {}) {
    super();
    const c = (this.config = { ...mobilevitDefaults, ...config });
    const n = c.channels.length;
    for (const [key, v] of [['strides', c.strides], ['depths', c.depths], ['bottleRatios', c.bottleRatios], ['transformerDepths', c.transformerDepths], ['transformerDims', c.transformerDims]] as const) {
      if (v.length !== n) throw new RangeError(`MobileViT: ${key} has ${v.length} entries, expected one per stage (${n}, as channels)`);
    }
    const rng = new Random(c.seed);
    this.stem = this.addChild('stem', new ConvNormAct(c.inChans, c.stemChs, 3, rng, { stride: 2 }));
    let prev = c.stemChs;
    this.stages = c.channels.map((ch, s) => {
      const out = makeDivisible(ch);
      const blocks: StageBlock[] = [];
      for (let j = 0; j < c.depths[s]!; j++) {
        blocks.push(this.addChild(`stages.${s}.${j}`, new InvertedResidual(prev, out, j === 0 ? c.strides[s]! : 1, c.bottleRatios[s]!, rng, c.zeroInitLast)));
        prev = out;
      }
      if (c.transformerDepths[s]! > 0) {
        if (blocks.length === 0) throw new RangeError(`MobileViT: stage ${s} has a MobileViT block but no inverted residual before it (depths[${s}] = 0)`);
        const name = `stages.${s}.${blocks.length}`;
        blocks.push(c.version === 1
          ? this.addChild(name, new MobileVitBlock(out, c.transformerDims[s]!, c.transformerDepths[s]!, c.patchSize, c.numHeads, c.mlpRatio, rng))
          : this.addChild(name, new MobileVitV2Block(out, makeDivisible(c.transformerRatio * out), c.transformerDepths[s]!, c.patchSize, c.mlpRatio, rng)));
      }
      return blocks;
    });
    if (c.numFeatures > 0) this.finalConv = this.addChild('final_conv', new ConvNormAct(prev, c.numFeatures, 1, rng));
    const blocks = this.stages.flat().length;
    this.blockRates = Array.from({ length: blocks }, (_, i) => (blocks > 1 ? (c.dropPathRate * i) / (blocks - 1) : c.dropPathRate));
    if (c.numClasses > 0) this.head = this.addChild('head.fc', new Linear(this.numFeatures, c.numClasses, rng, { std: 0.01 }));
  }

  get numFeatures(): number {
    const c = this.config;
    return c.numFeatures > 0 ? c.numFeatures : makeDivisible(c.channels[c.channels.length - 1]!);
  }

  /** Drop-path columns of each block: 1 per inverted residual, 2 per transformer block. */
  private slotsOf(b: StageBlock): number {
    return b instanceof InvertedResidual ? 1 : b.slots;
  }

  /**
   * drop_path [B, k]: the keep scales of every residual branch in order (one per inverted
   * residual, two per transformer block), each at its block's rate; head_drop [B, D].
   */
  override noiseInputs(): NoiseInput[] {
    const c = this.config;
    const out: NoiseInput[] = [];
    const rates = this.stages.flat().flatMap((b, i) => new Array<number>(this.slotsOf(b)).fill(this.blockRates[i]!));
    if (c.dropPathRate > 0 && rates.length > 0) {
      out.push({
        name: 'drop_path', perSample: rates.length, salt: DROP_PATH_SALT,
        draw: (rng, batch) => Float32Array.from({ length: batch * rates.length }, (_, i) => {
          const keep = 1 - rates[i % rates.length]!;
          return keep >= 1 ? 1 : rng.uniform() < keep ? 1 / keep : 0;
        }),
      });
    }
    const d = this.numFeatures;
    if (c.dropRate > 0) out.push({ name: 'head_drop', perSample: d, salt: HEAD_DROP_SALT, draw: (rng, batch) => dropoutScales(rng, c.dropRate, batch * d) });
    return out;
  }

  /** timm's ByobNet group_matcher: stem 0, each stages.S.J in order 1…K, final_conv and the head K + 1. */
  layerGrouping(): LayerGrouping {
    const starts: number[] = [];
    let k = 0;
    for (const stage of this.stages) { starts.push(k); k += stage.length; }
    return {
      blocks: k,
      layerOf(key) {
        if (key.startsWith('stem.')) return 0;
        const m = /^stages\.(\d+)\.(\d+)\./.exec(key);
        if (m) return starts[Number(m[1])]! + Number(m[2]) + 1;
        return k + 1;
      },
    };
  }

  headKeys(): string[] {
    return ['head.fc.weight', 'head.fc.bias'];
  }

  /** timm's adapt_input_conv on stem.conv for another channel count (grayscale from RGB weights). */
  override adaptPretrained(sd: StateDict): { state: StateDict; notes: string[] } {
    const w = sd['stem.conv.weight'];
    if (!w || w.shape[1] === this.config.inChans) return { state: sd, notes: [] };
    return {
      state: { ...sd, 'stem.conv.weight': adaptInputConv(w.data, w.shape, this.config.inChans) },
      notes: [`stem conv adapted from ${w.shape[1]} to ${this.config.inChans} input channels`],
    };
  }

  /** Images [B, C, H, W] → the final feature map [B, F, H/32, W/32]. */
  forwardFeatures(x: Tensor, { train, noise }: ForwardOptions = {}): Tensor {
    const dropPath = noise?.drop_path;
    let y = this.stem.forward(x, { train }); // [B, stem, H/2, W/2]
    let slot = 0;
    for (const stage of this.stages) {
      for (const block of stage) {
        if (block instanceof InvertedResidual) {
          const scale = dropPath && this.scoped(x.graph, () => branchScale(dropPath, slot, 1, 4)); // [B, 1, 1, 1]
          y = block.forward(y, { train, scale });
        } else {
          y = block.forward(y, { train, noise: dropPath, slot });
        }
        slot += this.slotsOf(block);
      }
    }
    return this.finalConv ? this.finalConv.forward(y, { train }) : y;
  }

  /** Global average pooling and head.fc: [B, F, h, w] → logits [B, classes]. */
  forwardHead(features: Tensor, { noise }: ForwardOptions = {}): { logits: Tensor; features: Tensor } {
    const pooled = this.scoped(features.graph, () => mean(features, [2, 3])); // [B, F]
    const headDrop = noise?.head_drop;
    const dropped = headDrop ? this.scoped(features.graph, () => mul(pooled, headDrop)) : pooled;
    return { logits: this.head ? this.head.forward(dropped) : dropped, features: pooled };
  }
}

// ---- checkpoints ------------------------------------------------------------------------------

/**
 * The architecture of a timm-layout MobileViT state dict (timm's keys need no filter), or
 * undefined when it is not one: a `stages.S.J.conv_1x1` MobileViT block says it is. Strides,
 * patch size, heads and image size are not in the weights: timm's values (1, 2, 2, 2, 2; 2; 4; 256).
 */
export function inferMobilevitConfig(sd: StateDict): Partial<MobileVitConfig> | undefined {
  const stem = sd['stem.conv.weight'];
  if (!stem || !Object.keys(sd).some((k) => /^stages\.\d+\.\d+\.conv_1x1\.weight$/.test(k))) return undefined;
  const version = Object.keys(sd).some((k) => k.includes('.attn.qkv_proj.')) ? 2 : 1;
  const channels: number[] = [], depths: number[] = [], bottleRatios: number[] = [], transformerDepths: number[] = [], transformerDims: number[] = [];
  let prev = stem.shape[0]!;
  for (let s = 0; `stages.${s}.0.conv_kxk.conv.weight` in sd || `stages.${s}.0.conv1_1x1.conv.weight` in sd; s++) {
    let j = 0;
    while (`stages.${s}.${j}.conv1_1x1.conv.weight` in sd) j++;
    const first = sd[`stages.${s}.0.conv1_1x1.conv.weight`]!;
    const out = sd[`stages.${s}.${j - 1}.conv3_1x1.conv.weight`]!.shape[0]!;
    depths.push(j);
    channels.push(out);
    bottleRatios.push(first.shape[0]! / prev);
    const proj = sd[`stages.${s}.${j}.conv_1x1.weight`];
    let k = 0;
    while (`stages.${s}.${j}.transformer.${k}.norm1.weight` in sd) k++;
    transformerDepths.push(proj ? k : 0);
    transformerDims.push(proj ? proj.shape[0]! : 0);
    prev = out;
  }
  const final = sd['final_conv.conv.weight'];
  const head = sd['head.fc.weight'];
  const fc1 = Object.entries(sd).find(([k]) => /transformer\.0\.mlp\.fc1\.weight$/.test(k)); // [hidden, D] or [hidden, D, 1, 1]
  const mlpRatio = fc1 ? fc1[1].shape[0]! / fc1[1].shape[1]! : 2;
  return {
    version, inChans: stem.shape[1]!, stemChs: stem.shape[0]!, channels, strides: channels.map((_, s) => (s === 0 ? 1 : 2)), depths, bottleRatios,
    transformerDepths, transformerDims: version === 1 ? transformerDims : channels.map(() => 0), mlpRatio,
    numFeatures: final ? final.shape[0]! : 0, numClasses: head ? head.shape[0]! : 0,
  };
}

// ---- pretrained configs and registered entries ------------------------------------------------

/** timm's default_cfg: 256 px, [0, 1] input (mean 0, std 1), bicubic, crop_pct 0.9 (v2: 0.888). */
const cvnets = (cropPct: number): PretrainedConfig => ({ inputSize: [3, 256, 256], mean: [0, 0, 0], std: [1, 1, 1], interpolation: 'bicubic', cropPct, numClasses: 1000 });
const fashionMnist: PretrainedConfig = { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 };

export const mobilevitEntries: ModelEntry[] = [];
function mobilevit(name: string, config: Partial<MobileVitConfig>, pretrained: PretrainedConfig, params?: number, description?: string) {
  mobilevitEntries.push({ name, family: 'mobilevit', config, pretrained, params, description });
}

const v1 = (stemChs: number, channels: number[], dims: number[], ratio: number, numFeatures: number): Partial<MobileVitConfig> => ({
  version: 1, stemChs, channels, transformerDims: [0, 0, ...dims], bottleRatios: channels.map(() => ratio), numFeatures,
  strides: [1, 2, 2, 2, 2], depths: [1, 3, 1, 1, 1], transformerDepths: [0, 0, 2, 4, 3],
});
/** timm's _mobilevitv2_cfg: widths (64, 128, 256, 384, 512) and stem 32 times the multiplier. */
const v2 = (m: number): Partial<MobileVitConfig> => ({
  version: 2, stemChs: Math.floor(32 * m), channels: [64, 128, 256, 384, 512].map((c) => Math.floor(c * m)), transformerDims: [0, 0, 0, 0, 0],
  bottleRatios: [2, 2, 2, 2, 2], numFeatures: 0, strides: [1, 2, 2, 2, 2], depths: [1, 2, 1, 1, 1], transformerDepths: [0, 0, 2, 4, 3],
});
/** MobileViTv2 at width multiplier `m` (timm's mobilevitv2_050 … _200): torchrun matches configs against it. */
export const mobilevitV2Config = v2;

//        name                 stem   stage widths                   transformer widths  ratio  final      timm's params
mobilevit('mobilevit_xxs', v1(16, [16, 24, 48, 64, 80], [64, 80, 96], 2, 320), cvnets(0.9), 1_272_024);
mobilevit('mobilevit_xs', v1(16, [32, 48, 64, 80, 96], [96, 120, 144], 4, 384), cvnets(0.9), 2_317_848);
mobilevit('mobilevit_s', v1(16, [32, 64, 96, 128, 160], [144, 192, 240], 4, 640), cvnets(0.9), 5_578_632);
mobilevit('mobilevitv2_050', v2(0.5), cvnets(0.888), 1_370_593);
mobilevit('mobilevitv2_100', v2(1.0), cvnets(0.888), 4_901_841);
// Small-image preset: 28 → 14 (stem) → 14, 14, 7, 4 with mobilevit_xxs's widths; MobileViT blocks at 7×7
// (resized to 8×8 and back: 16 patches of 2×2) and 4×4 (4 patches), where the full models have 32×32 … 8×8.
mobilevit('mobilevit_xxs_28', {
  imgSize: 28, inChans: 1, numClasses: 10, version: 1, stemChs: 16, channels: [16, 24, 48, 64], strides: [1, 1, 2, 2], depths: [1, 2, 1, 1],
  bottleRatios: [2, 2, 2, 2], transformerDepths: [0, 0, 2, 2], transformerDims: [0, 0, 64, 80], numFeatures: 256,
}, fashionMnist, undefined, '28×28 grayscale (Fashion-MNIST, MNIST): mobilevit_xxs widths, MobileViT blocks at 7×7 and 4×4');

registerFamily<MobileVitConfig>({
  name: 'mobilevit',
  defaults: mobilevitDefaults,
  kwargsSchema: mobilevitKwargsSchema,
  create: (config) => new MobileVit(config),
  inferConfig: inferMobilevitConfig,
  // 24 → 12 (stem) → 12, 6, 3: MobileViT blocks at 6×6 and at 3×3 (resized to 4×4 and back)
  tinyArgs: {
    imgSize: 24, inChans: 3, numClasses: 5, stemChs: 8, channels: [8, 16, 16], strides: [1, 2, 2], depths: [1, 1, 1], bottleRatios: [2, 2, 2],
    transformerDepths: [0, 1, 1], transformerDims: [0, 16, 16], numHeads: 2, numFeatures: 32, zeroInitLast: false,
  },
});
