/** MobileViT's building blocks (timm's byobnet / mobilevit modules): convolutions with BatchNorm and SiLU, inverted residuals, the v1 and v2 MobileViT blocks and their transformers. */
import type { Tensor } from '../ir/tensor.js';
import { add, concat, mul, relu, reshape, resizeBilinear, silu, slice, softmax, sum, transpose } from '../ops/index.js';
import { Random } from '../random.js';
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, GroupNorm, LayerNorm, Linear } from '../nn/layers.js';
import { Attention } from '../nn/transformer.js';
import { normal, zeros } from '../nn/init.js';

export const BN_EPS = 1e-5;
export const LN_EPS = 1e-5;

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
export function branchScale(noise: Tensor | undefined, slot: number, repeat: number, rank: number): Tensor | undefined {
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

/** One block of a stage, as the model holds them. */
export type StageBlock = InvertedResidual | MobileVitBlock | MobileVitV2Block;
