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
import { mean, mul } from '../ops/index.js';
import { Random } from '../random.js';
import type { StateDict } from '../nn/module.js';
import { GroupNorm, LayerNorm, Linear } from '../nn/layers.js';
import { dropoutScales } from '../nn/drop_path.js';
import { adaptInputConv } from './adapt_input.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type NoiseInput } from './model.js';
import type { ModelEntry, PretrainedConfig } from './registry.js';
import { branchScale, makeDivisible, ConvNormAct, InvertedResidual, MobileVitBlock, MobileVitV2Block, type StageBlock } from './mobilevit_blocks.js';

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

const DROP_PATH_SALT = 0xd209;
const HEAD_DROP_SALT = 0xd20b;

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
