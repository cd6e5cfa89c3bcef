/**
 * Masked Autoencoders — "Masked Autoencoders Are Scalable Vision Learners" (He et al. 2021,
 * https://arxiv.org/abs/2111.06377), as facebookresearch/mae's models_mae.py computes it.
 *
 * The encoder is a timm ViT (keys `patch_embed.*`, `cls_token`, `pos_embed`, `blocks.N.*`,
 * `norm.*`) whose position table is a fixed 2-D sin-cos buffer; the decoder has the official keys
 * `decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks.N.*`, `decoder_norm`,
 * `decoder_pred`, so an official MAE state dict loads with no mapping, and the encoder's keys load
 * into a `vit` model for fine-tuning (`train --pretrained`).
 *
 * Masking is per sample: the host draws uniform noise, argsorts it (small keeps) and feeds the
 * kept indices, the restoring permutation and the binary mask (`maskFromNoise`). The encoder
 * runs only on the kept patches (a gather by index), which is MAE's speed advantage.
 */
import { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import { BATCH } from '../ir/shape.js';
import { add, concat, div, expand, gather, gatherElements, keepTokens, mean, mul, reshape, slice, sqrt, sub, sum, transpose, unsqueeze, unshuffleTokens } from '../ops/index.js';
import { Random } from '../random.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { PatchEmbed } from '../nn/patch_embed.js';
import { Block } from '../nn/transformer.js';
import { normal } from '../nn/init.js';
import { adaptPatchEmbed, blockLayerGrouping } from './family_parts.js';
import { vitEncoderConfig, type VitEncoderShape } from './vit.js';
import type { ModelEntry } from './registry.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type TokenGrid } from './model.js';

export interface MaeConfig extends CommonModelArgs, Required<Omit<VitEncoderShape, 'qkvBias'>> {
  decoderEmbedDim: number;
  decoderDepth: number;
  decoderNumHeads: number;
  /** Targets are each patch's pixels normalised by the patch's mean and (unbiased) variance. */
  normPixLoss: boolean;
}

/** mae_vit_base_patch16_dec512d8b, trained (as the official recipe) with norm_pix_loss. */
export const maeDefaults: MaeConfig = {
  imgSize: 224, patchSize: 16, inChans: 3, numClasses: 0, embedDim: 768, depth: 12, numHeads: 12,
  decoderEmbedDim: 512, decoderDepth: 8, decoderNumHeads: 16, mlpRatio: 4, normPixLoss: true,
  dropPathRate: 0, dropRate: 0, seed: 0,
};

const count = z.number().int().positive();
export const maeKwargsSchema = z.object({
  patchSize: count, embedDim: count, depth: count, numHeads: count, decoderEmbedDim: count, decoderDepth: count,
  decoderNumHeads: count, mlpRatio: z.number().positive(), normPixLoss: z.boolean(),
}).partial().strict();

/** LayerNorm epsilon of every MAE norm (partial(nn.LayerNorm, eps=1e-6)). */
const EPS = 1e-6;

/** MAE's get_1d_sincos_pos_embed_from_grid, in float64: [sin(pos·ω) | cos(pos·ω)], ω_i = 10000^(−2i/dim). */
function sincos1d(dim: number, positions: readonly number[]): Float64Array[] {
  const half = dim / 2;
  return positions.map((p) => {
    const row = new Float64Array(dim);
    for (let i = 0; i < half; i++) {
      const omega = 1 / 10000 ** (i / half);
      row[i] = Math.sin(p * omega);
      row[half + i] = Math.cos(p * omega);
    }
    return row;
  });
}

/**
 * MAE's get_2d_sincos_pos_embed with cls_token=True: [1 + g², dim], the class row zero. Of each
 * patch's row, the first half encodes its column and the second its row (the official code's
 * meshgrid puts w first).
 */
export function sincosPosEmbed2d(dim: number, grid: number): Float32Array {
  if (dim % 4 !== 0) throw new RangeError(`a 2-D sin-cos position table needs a width divisible by 4, got ${dim}`);
  const out = new Float32Array((1 + grid * grid) * dim);
  const cells = Array.from({ length: grid * grid }, (_, k) => k);
  const byColumn = sincos1d(dim / 2, cells.map((k) => k % grid));
  const byRow = sincos1d(dim / 2, cells.map((k) => Math.floor(k / grid)));
  cells.forEach((k) => {
    out.set(byColumn[k]!, (1 + k) * dim);
    out.set(byRow[k]!, (1 + k) * dim + dim / 2);
  });
  return out;
}

/** One step's masking, as the graph inputs MAE's loss takes. */
export interface MaeMask {
  /** [B, keep] int64: the kept patches of each sample, in shuffled order. */
  idsKeep: BigInt64Array;
  /** [B, N] int64: the permutation that puts the shuffled sequence back in patch order. */
  idsRestore: BigInt64Array;
  /** [B, N] float: 1 where a patch is removed, in patch order. */
  mask: Float32Array;
  keep: number;
}

/** Patches kept at a mask ratio: int(N · (1 − ratio)), as random_masking computes len_keep. */
export const keptPatches = (numPatches: number, maskRatio: number): number => Math.trunc(numPatches * (1 - maskRatio));

/**
 * random_masking on the host from noise [B, N]: argsort (ascending: small noise is kept), its
 * inverse, the first `keep` indices, and the mask unshuffled to patch order.
 */
export function maskFromNoise(noise: Float32Array, batch: number, numPatches: number, maskRatio: number): MaeMask {
  const n = numPatches;
  const keep = keptPatches(n, maskRatio);
  const idsKeep = new BigInt64Array(batch * keep);
  const idsRestore = new BigInt64Array(batch * n);
  const mask = new Float32Array(batch * n).fill(1);
  // typed arrays and no per-element closures: this runs on the host before every step
  const shuffle = new Int32Array(n);
  const big = Array.from({ length: n }, (_, i) => BigInt(i));
  for (let b = 0; b < batch; b++) {
    const row = noise.subarray(b * n, (b + 1) * n);
    for (let i = 0; i < n; i++) shuffle[i] = i;
    shuffle.sort((i, j) => row[i]! - row[j]! || i - j);
    for (let rank = 0; rank < n; rank++) {
      const patch = shuffle[rank]!;
      idsRestore[b * n + patch] = big[rank]!;
      if (rank < keep) {
        idsKeep[b * keep + rank] = big[patch]!;
        mask[b * n + patch] = 0;
      }
    }
  }
  return { idsKeep, idsRestore, mask, keep };
}

/** The traced MAE forward of one step: the loss and the decoder's per-patch predictions. */
export interface MaeForward {
  loss: Tensor;
  /** [B, N, p·p·C] in patchify's (p, q, c) order. */
  pred: Tensor;
}

/**
 * How the step moves tokens in and out of shuffled order: `rows` (the default) with the
 * token-shuffle primitives, whose backward passes are row-gathers; `gather` as the official code
 * writes it (torch.gather by an index expanded over the width, the mask tokens concatenated),
 * whose backward passes are scatter-adds. Same values and gradients; `gather` stays as the
 * formulation the other is checked and timed against (test/train/mae.test.ts, bench/mae_step.ts).
 */
export type MaeShuffle = 'rows' | 'gather';

/** Tokens [B, T, D] gathered along the token axis by indices [B, K] → [B, K, D] (torch.gather with a repeated index). */
function takeTokens(tokens: Tensor, ids: Tensor): Tensor {
  const d = tokens.shape[2] as number;
  return gatherElements(tokens, expand(unsqueeze(ids, 2), [BATCH, ids.shape[1]!, d]), 1);
}

export class MaskedAutoencoderViT extends ImageModel {
  readonly family = 'mae';
  readonly config: MaeConfig;
  readonly patchEmbed: PatchEmbed;
  readonly blocks: Block[];
  readonly norm: LayerNorm;
  readonly decoderEmbed: Linear;
  readonly decoderBlocks: Block[];
  readonly decoderNorm: LayerNorm;
  readonly decoderPred: Linear;

  constructor(config: Partial<MaeConfig> = {}) {
    super();
    const c = (this.config = { ...maeDefaults, ...config, numClasses: 0 });
    const rng = new Random(c.seed);
    this.patchEmbed = this.addChild('patch_embed', new PatchEmbed(c.imgSize, c.patchSize, c.inChans, c.embedDim, rng));
    const grid = this.patchEmbed.gridSize[0];
    const n = this.patchEmbed.numPatches;
    // timm's trunc_normal_(std=.02) is in effect normal(0.02), as the official init notes
    this.addParam('cls_token', [1, 1, c.embedDim], normal(0.02), rng);
    this.addBuffer('pos_embed', [1, n + 1, c.embedDim], () => sincosPosEmbed2d(c.embedDim, grid));
    const block = (dim: number, heads: number) => new Block(dim, heads, rng, { mlpRatio: c.mlpRatio, qkvBias: true, eps: EPS });
    this.blocks = Array.from({ length: c.depth }, (_, i) => this.addChild(`blocks.${i}`, block(c.embedDim, c.numHeads)));
    this.norm = this.addChild('norm', new LayerNorm(c.embedDim, EPS));
    this.decoderEmbed = this.addChild('decoder_embed', new Linear(c.embedDim, c.decoderEmbedDim, rng));
    this.addParam('mask_token', [1, 1, c.decoderEmbedDim], normal(0.02), rng);
    this.addBuffer('decoder_pos_embed', [1, n + 1, c.decoderEmbedDim], () => sincosPosEmbed2d(c.decoderEmbedDim, grid));
    this.decoderBlocks = Array.from({ length: c.decoderDepth }, (_, i) => this.addChild(`decoder_blocks.${i}`, block(c.decoderEmbedDim, c.decoderNumHeads)));
    this.decoderNorm = this.addChild('decoder_norm', new LayerNorm(c.decoderEmbedDim, EPS));
    this.decoderPred = this.addChild('decoder_pred', new Linear(c.decoderEmbedDim, c.patchSize ** 2 * c.inChans, rng));
  }

  get numFeatures(): number {
    return this.config.embedDim;
  }

  get numPatches(): number {
    return this.patchEmbed.numPatches;
  }

  /** Encoder layer ids as the ViT it fine-tunes into; the decoder counts as after the blocks. */
  layerGrouping(): LayerGrouping {
    return blockLayerGrouping(this.config.depth, /^(cls_token|pos_embed|patch_embed\.)/);
  }

  headKeys(): string[] {
    return [];
  }

  override tokenGrid(): TokenGrid {
    const c = this.config;
    return { grid: [...this.patchEmbed.gridSize] as [number, number], prefix: 1, pool: 'cls', depth: c.depth, heads: c.numHeads };
  }

  override adaptPretrained(sd: Parameters<ImageModel['adaptPretrained']>[0]) {
    return adaptPatchEmbed(sd, this.config.inChans);
  }

  /** Patch tokens plus their fixed positions [B, N, D], and the class token with its position [B, 1, D]. */
  private embed(x: Tensor): { patches: Tensor; cls: Tensor } {
    const g = x.graph;
    const n = this.numPatches;
    const tokens = this.patchEmbed.forward(x); // [B, N, D]
    return this.scoped(g, () => ({ patches: add(tokens, slice(this.b(g, 'pos_embed'), [1], [1], [n + 1])), cls: this.clsToken(g) }));
  }

  /** The class token plus its position, [B, 1, D]. */
  private clsToken(g: Tensor['graph']): Tensor {
    const pos = this.b(g, 'pos_embed'); // [1, 1 + N, D]
    return expand(add(this.p(g, 'cls_token'), slice(pos, [1], [0], [1])), [BATCH, 1, this.config.embedDim]);
  }

  /**
   * The kept patches' tokens with their positions [B, K, D], embedding only those: the pixels are
   * gathered before the patch projection, so neither it nor its weight gradient runs on the
   * removed 75% (the official code embeds every patch and gathers after; the same values).
   */
  private embedKept(x: Tensor, idsKeep: Tensor, idsRestore: Tensor): Tensor {
    const g = x.graph;
    const { embedDim: d } = this.config;
    const n = this.numPatches;
    const tokens = this.patchEmbed.embedPatches(keepTokens(this.patchEmbed.patches(x), idsKeep, idsRestore)); // [B, K, D]
    return this.scoped(g, () => add(tokens, gather(reshape(slice(this.b(g, 'pos_embed'), [1], [1], [n + 1]), [n, d]), idsKeep, 0)));
  }

  private encode(tokens: Tensor): Tensor {
    for (const block of this.blocks) tokens = block.forward(tokens);
    return this.norm.forward(tokens);
  }

  /** The encoder on every patch (no masking): tokens [B, 1 + N, D] after the final norm, for features and k-NN. */
  forwardFeatures(x: Tensor, _opts: ForwardOptions = {}): Tensor {
    const { patches, cls } = this.embed(x);
    return this.encode(this.scoped(x.graph, () => concat([cls, patches], 1)));
  }

  /** The class token's features [B, D] (MAE's linear probe reads it); a pretraining model has no head. */
  forwardHead(tokens: Tensor): { logits: Tensor; features: Tensor } {
    const features = this.scoped(tokens.graph, () => reshape(slice(tokens, [1], [0], [1]), [-1, this.config.embedDim])); // [B, D]
    return { logits: features, features };
  }

  /** patchify: images [B, C, H, W] → [B, N, p·p·C], each patch's pixels in (row, column, channel) order. */
  patchify(x: Tensor): Tensor {
    const { patchSize: p, inChans: c } = this.config;
    const [gh, gw] = this.patchEmbed.gridSize;
    const grid = reshape(x, [-1, c, gh, p, gw, p]); // [B, C, h, p, w, q]
    return reshape(transpose(grid, [0, 2, 4, 3, 5, 1]), [-1, gh * gw, p * p * c]); // [B, h, w, p, q, C] → [B, N, p·p·C]
  }

  /**
   * forward_encoder on the kept patches, forward_decoder and forward_loss: ids_keep [B, K] and
   * ids_restore [B, N] (int64), mask [B, N] (1 = removed) come from `maskFromNoise`.
   */
  maeForward(x: Tensor, { idsKeep, idsRestore, mask }: { idsKeep: Tensor; idsRestore: Tensor; mask: Tensor }, shuffle: MaeShuffle = 'rows'): MaeForward {
    const g = x.graph;
    const c = this.config;
    const n = this.numPatches;
    const keep = idsKeep.shape[1] as number;
    const visibleTokens = shuffle === 'rows' ? this.embedKept(x, idsKeep, idsRestore) : takeTokens(this.embed(x).patches, idsKeep); // [B, K, D]
    const latent = this.encode(this.scoped(g, () => concat([this.clsToken(g), visibleTokens], 1))); // [B, 1 + K, D]
    const dec = this.decoderEmbed.forward(latent); // [B, 1 + K, Dd]
    let tokens = this.scoped(g, () => {
      // the visible tokens back in patch order, mask_token at the removed patches: the official
      // concat of N − K mask tokens and gather by ids_restore, as one row-gather (src/ops/token_shuffle.ts)
      const visible = slice(dec, [1], [1], [keep + 1]); // [B, K, Dd]
      const unshuffled = shuffle === 'rows' ? unshuffleTokens(visible, this.p(g, 'mask_token'), idsRestore, idsKeep)
        : takeTokens(concat([visible, expand(this.p(g, 'mask_token'), [BATCH, n - keep, c.decoderEmbedDim])], 1), idsRestore); // [B, N, Dd]
      return add(concat([slice(dec, [1], [0], [1]), unshuffled], 1), this.b(g, 'decoder_pos_embed')); // [B, 1 + N, Dd]
    });
    for (const block of this.decoderBlocks) tokens = block.forward(tokens);
    const out = this.decoderPred.forward(this.decoderNorm.forward(tokens)); // [B, 1 + N, p·p·C]
    return this.scoped(g, () => {
      const pred = slice(out, [1], [1], [n + 1]); // [B, N, p·p·C]
      let target = this.patchify(x);
      if (c.normPixLoss) {
        const width = target.shape[2] as number;
        const centred = sub(target, mean(target, -1, true));
        const variance = div(sum(mul(centred, centred), -1, true), width - 1); // unbiased, as torch.var
        target = div(centred, sqrt(add(variance, 1e-6)));
      }
      const err = sub(pred, target);
      const perPatch = mean(mul(err, err), -1); // [B, N]
      return { loss: div(sum(mul(perPatch, mask)), sum(mask)), pred };
    });
  }
}

registerFamily<MaeConfig>({
  name: 'mae',
  defaults: maeDefaults,
  kwargsSchema: maeKwargsSchema,
  create: (config) => new MaskedAutoencoderViT(config),
  tinyArgs: { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 24, depth: 2, numHeads: 2, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2, mlpRatio: 2 },
  encoder: {
    family: 'vit',
    config: vitEncoderConfig,
  },
  // an MAE state dict: the encoder's keys plus the official decoder's
  inferConfig(sd) {
    const pred = sd['decoder_pred.weight'];
    const proj = sd['patch_embed.proj.weight'];
    if (!pred || !proj || !sd.mask_token) return undefined;
    const count = (prefix: string) => new Set(Object.keys(sd).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length).split('.')[0])).size;
    const [embedDim, inChans, patchSize] = proj.shape as number[];
    const n = (sd.pos_embed!.shape[1] as number) - 1;
    return {
      embedDim: embedDim!, inChans: inChans!, patchSize: patchSize!, imgSize: Math.round(Math.sqrt(n)) * patchSize!,
      depth: count('blocks.'), decoderDepth: count('decoder_blocks.'), decoderEmbedDim: pred.shape[1] as number,
      mlpRatio: (sd['blocks.0.mlp.fc1.weight']!.shape[0] as number) / embedDim!,
    };
  },
});

/** Registered MAE architectures: the official three (decoder 512-d, 8 blocks) and small-image presets whose encoders are the vit presets. */
const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const imagenet224 = { inputSize: [3, 224, 224] as [number, number, number], ...IMAGENET, interpolation: 'bicubic' as const, cropPct: 0.9, numClasses: 0 };
const officialDecoder = { decoderEmbedDim: 512, decoderDepth: 8, decoderNumHeads: 16, mlpRatio: 4 };
export const maeEntries: ModelEntry[] = [
  { name: 'mae_vit_base_patch16', family: 'mae', config: { patchSize: 16, embedDim: 768, depth: 12, numHeads: 12, ...officialDecoder }, pretrained: imagenet224, description: 'MAE pretraining of vit_base_patch16_224 (official mae_vit_base_patch16_dec512d8b)' },
  { name: 'mae_vit_large_patch16', family: 'mae', config: { patchSize: 16, embedDim: 1024, depth: 24, numHeads: 16, ...officialDecoder }, pretrained: imagenet224, description: 'MAE pretraining of vit_large_patch16_224' },
  { name: 'mae_vit_huge_patch14', family: 'mae', config: { patchSize: 14, embedDim: 1280, depth: 32, numHeads: 16, ...officialDecoder }, pretrained: imagenet224, description: 'MAE pretraining of vit_huge_patch14_224' },
  { name: 'mae_vit_tiny_patch4_28', family: 'mae', config: { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 96, depth: 6, numHeads: 3, mlpRatio: 2, decoderEmbedDim: 64, decoderDepth: 2, decoderNumHeads: 4 },
    pretrained: { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 0 }, description: 'MAE pretraining of vit_tiny_patch4_28 (28×28 grayscale)' },
  { name: 'mae_vit_tiny_patch4_32', family: 'mae', config: { imgSize: 32, patchSize: 4, inChans: 3, embedDim: 192, depth: 9, numHeads: 3, mlpRatio: 2, decoderEmbedDim: 128, decoderDepth: 2, decoderNumHeads: 4 },
    pretrained: { inputSize: [3, 32, 32], mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], interpolation: 'bilinear', cropPct: 1, numClasses: 0 }, description: 'MAE pretraining of vit_tiny_patch4_32 (32×32 RGB)' },
];
