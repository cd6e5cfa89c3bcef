/**
 * Vision Transformer — "An Image is Worth 16x16 Words" (Dosovitskiy et al. 2020,
 * https://arxiv.org/abs/2010.11929) — and DeiT with its distillation token ("Training
 * data-efficient image transformers", Touvron et al. 2020, https://arxiv.org/abs/2012.12877).
 *
 * Parameter names, semantics and initialisation follow timm's `vision_transformer.py`, so a timm
 * state dict loads without any key mapping.
 */
import type { Tensor } from '../ir/tensor.js';
import { add, concat, div, expand, mean, mul, reshape, slice } from '../ops/index.js';
import { BATCH } from '../ir/shape.js';
import { Random } from '../random.js';
import { Module, StateDictError, type StateDict } from '../nn/module.js';
import { Identity, LayerNorm, Linear } from '../nn/layers.js';
import { PatchEmbed } from '../nn/patch_embed.js';
import { ConvStemEmbed, type StemNorm } from '../nn/conv_stem.js';
import { Block } from '../nn/transformer.js';
import { normal, truncNormal } from '../nn/init.js';
import { resamplePosEmbed } from './pos_embed.js';

export interface VitConfig {
  imgSize: number;
  patchSize: number;
  inChans: number;
  /** 0 gives a features-only model (no head). */
  numClasses: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  qkvBias: boolean;
  classToken: boolean;
  /** 'token': the class token after the final norm; 'avg': mean of patch tokens, then fc_norm. */
  globalPool: 'token' | 'avg';
  /** DeiT: a distillation token and a second head; at eval the two heads are averaged. */
  distilled: boolean;
  /** pos_embed covers only the patch tokens (timm's no_embed_class). */
  noEmbedClass: boolean;
  /** Stochastic depth rate of the last block (linearly increasing from 0). */
  dropPathRate: number;
  /** Dropout on the pooled features before the head. */
  dropRate: number;
  /** LayerNorm epsilon (timm 1e-6; Hugging Face ViT checkpoints use 1e-12). */
  eps: number;
  /** Seed of the initialisation. */
  seed: number;
  /** 'patch': timm's patchify conv; 'conv': a stack of 3×3 stride-2 convs (ConvStemEmbed). */
  embedLayer: 'patch' | 'conv';
  /** Channels of the conv stem's first conv (doubled after each stride-2 conv). */
  stemWidth: number;
  /**
   * Strides of the conv stem's 3×3 convs, each 1 or 2, multiplying to the patch size; empty:
   * log2(patch) stride-2 convs. A leading 1 adds a full-resolution conv (e.g. [1, 2, 2]).
   */
  stemStrides: readonly number[];
  /** The conv stem's normalisation: 'none', or 'group' (a GroupNorm after each 3×3 conv). */
  stemNorm: StemNorm;
}

export const vitDefaults: VitConfig = {
  imgSize: 224, patchSize: 16, inChans: 3, numClasses: 1000, embedDim: 768, depth: 12, numHeads: 12,
  mlpRatio: 4, qkvBias: true, classToken: true, globalPool: 'token', distilled: false, noEmbedClass: false,
  dropPathRate: 0, dropRate: 0, eps: 1e-6, seed: 0, embedLayer: 'patch', stemWidth: 24, stemStrides: [], stemNorm: 'none',
};

/** Per-step random scales for training: drop-path [B, depth·2] and head dropout [B, D]. */
export interface VitNoise { dropPath?: Tensor; headDrop?: Tensor }

export interface VitOutput {
  logits: Tensor;
  /** The pooled features fed to the head [B, D]. */
  features: Tensor;
  /** Each block's attention probabilities [B, H, T, T], when requested. */
  attentions?: Tensor[];
}

export class VisionTransformer extends Module {
  readonly config: VitConfig;
  readonly numPrefixTokens: number;
  readonly patchEmbed: PatchEmbed | ConvStemEmbed;
  readonly blocks: Block[];
  readonly norm: LayerNorm | Identity;
  readonly fcNorm: LayerNorm | Identity;
  readonly head?: Linear;
  readonly headDist?: Linear;

  constructor(config: Partial<VitConfig> = {}) {
    super();
    const c = (this.config = { ...vitDefaults, ...config });
    if (c.globalPool === 'token' && !c.classToken) throw new RangeError("globalPool 'token' needs classToken");
    if (c.distilled && !c.classToken) throw new RangeError('a distilled model needs classToken');
    const rng = new Random(c.seed);
    this.numPrefixTokens = (c.classToken ? 1 : 0) + (c.distilled ? 1 : 0);
    this.patchEmbed = this.addChild('patch_embed', c.embedLayer === 'conv'
      ? new ConvStemEmbed(c.imgSize, c.patchSize, c.inChans, c.embedDim, rng, c.stemWidth, c.stemStrides, c.stemNorm)
      : new PatchEmbed(c.imgSize, c.patchSize, c.inChans, c.embedDim, rng));
    if (c.classToken) this.addParam('cls_token', [1, 1, c.embedDim], normal(1e-6), rng);
    const posTokens = this.patchEmbed.numPatches + (c.noEmbedClass ? 0 : this.numPrefixTokens);
    this.addParam('pos_embed', [1, posTokens, c.embedDim], truncNormal(0.02), rng);
    // DeiT adds its distillation token after the base model's parameters (timm's key order)
    if (c.distilled) this.addParam('dist_token', [1, 1, c.embedDim], truncNormal(0.02), rng);
    this.blocks = Array.from({ length: c.depth }, (_, i) =>
      this.addChild(`blocks.${i}`, new Block(c.embedDim, c.numHeads, rng, { mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, eps: c.eps })));
    // timm: with avg pooling the final norm moves after the pooling (fc_norm)
    const useFcNorm = c.globalPool === 'avg';
    this.norm = useFcNorm ? new Identity() : this.addChild('norm', new LayerNorm(c.embedDim, c.eps));
    this.fcNorm = useFcNorm ? this.addChild('fc_norm', new LayerNorm(c.embedDim, c.eps)) : new Identity();
    if (c.numClasses > 0) {
      this.head = this.addChild('head', new Linear(c.embedDim, c.numClasses, rng));
      if (c.distilled) this.headDist = this.addChild('head_dist', new Linear(c.embedDim, c.numClasses, rng));
    }
  }

  get numFeatures(): number {
    return this.config.embedDim;
  }

  /** Images [B, C, H, W] → tokens [B, prefix + N, D] after the final norm. */
  forwardFeatures(x: Tensor, { noise, attentions }: { noise?: VitNoise; attentions?: Tensor[] } = {}): Tensor {
    const g = x.graph;
    const c = this.config;
    const d = c.embedDim;
    let tokens = this.patchEmbed.forward(x); // [B, N, D]
    tokens = this.scoped(g, () => {
      const prefix = [...(c.classToken ? ['cls_token'] : []), ...(c.distilled ? ['dist_token'] : [])]
        .map((name) => expand(this.p(g, name), [BATCH, 1, d])); // [B, 1, D] each
      const pos = this.p(g, 'pos_embed');
      if (c.noEmbedClass) return concat([...prefix, add(tokens, pos)], 1);
      return add(concat([...prefix, tokens], 1), pos); // [B, T, D]
    });
    this.blocks.forEach((block, i) => {
      const scale = noise?.dropPath && this.scoped(g, () => ({
        attn: reshape(slice(noise.dropPath!, [1], [2 * i], [2 * i + 1]), [-1, 1, 1]), // [B, 1, 1]
        mlp: reshape(slice(noise.dropPath!, [1], [2 * i + 1], [2 * i + 2]), [-1, 1, 1]),
      }));
      const out = block.forwardWithAttention(tokens, scale);
      tokens = out.out;
      attentions?.push(out.attn);
    });
    return this.norm instanceof LayerNorm ? this.norm.forward(tokens) : tokens;
  }

  /** Pooling, fc_norm and head(s): tokens [B, T, D] → logits [B, classes] (or features when headless). */
  forwardHead(tokens: Tensor, noise?: VitNoise): { logits: Tensor; features: Tensor } {
    const g = tokens.graph;
    const c = this.config;
    const d = c.embedDim;
    const token = (i: number) => reshape(slice(tokens, [1], [i], [i + 1]), [-1, d]); // [B, D]
    let features = this.scoped(g, () =>
      c.globalPool === 'avg' ? mean(slice(tokens, [1], [this.numPrefixTokens], [tokens.shape[1] as number]), 1) : token(0));
    if (this.fcNorm instanceof LayerNorm) features = this.fcNorm.forward(features);
    const dropped = noise?.headDrop ? this.scoped(g, () => mul(features, noise.headDrop!)) : features;
    if (!this.head) return { logits: dropped, features };
    let logits = this.head.forward(dropped);
    if (this.headDist) {
      const dist = this.headDist.forward(this.scoped(g, () => token(1)));
      logits = this.scoped(g, () => div(add(logits, dist), 2)); // DeiT: average of both heads
    }
    return { logits, features };
  }

  forward(x: Tensor, opts: { noise?: VitNoise; attention?: boolean } = {}): VitOutput {
    const attentions: Tensor[] | undefined = opts.attention ? [] : undefined;
    const tokens = this.forwardFeatures(x, { noise: opts.noise, attentions });
    return { ...this.forwardHead(tokens, opts.noise), attentions };
  }

  /** Input shape [C, H, W]. */
  get inputShape(): [number, number, number] {
    return [this.config.inChans, this.config.imgSize, this.config.imgSize];
  }

  /**
   * Loads a timm-layout state dict. A pos_embed for another grid is resampled (bicubic,
   * antialiased, as timm does) when `resamplePos` is set.
   */
  override loadStateDict(sd: StateDict, strict = true, { resamplePos = false } = {}): { missing: string[]; unexpected: string[] } {
    const pe = sd.pos_embed;
    const own = this.namedParameters().find(([k]) => k === 'pos_embed')![1];
    if (pe && resamplePos && pe.data.length !== own.data.length) {
      const d = this.config.embedDim;
      const prefix = this.config.noEmbedClass ? 0 : this.numPrefixTokens;
      const oldN = pe.data.length / d - prefix;
      const side = Math.round(Math.sqrt(oldN));
      if (side * side !== oldN) throw new StateDictError(`pos_embed of shape [${pe.shape.join(', ')}] is not a square grid`);
      const [gh, gw] = this.patchEmbed.gridSize;
      sd = { ...sd, pos_embed: { data: resamplePosEmbed(pe.data, d, [side, side], [gh, gw], prefix), shape: own.shape } };
    }
    return super.loadStateDict(sd, strict);
  }
}
