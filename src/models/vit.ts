/**
 * Vision Transformer — "An Image is Worth 16x16 Words" (Dosovitskiy et al. 2020,
 * https://arxiv.org/abs/2010.11929) — and DeiT with its distillation token ("Training
 * data-efficient image transformers", Touvron et al. 2020, https://arxiv.org/abs/2012.12877).
 *
 * Parameter names, semantics and initialisation follow timm's `vision_transformer.py`, so a timm
 * state dict loads without any key mapping.
 */
import { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import { add, concat, div, expand, mean, mul, reshape, slice } from '../ops/index.js';
import { BATCH } from '../ir/shape.js';
import { Random } from '../random.js';
import { StateDictError, type StateDict } from '../nn/module.js';
import { Identity, LayerNorm, Linear } from '../nn/layers.js';
import { PatchEmbed } from '../nn/patch_embed.js';
import { ConvStemEmbed, type StemNorm } from '../nn/conv_stem.js';
import { Block, type MergeHooks } from '../nn/transformer.js';
import { defaultPruneLocs, gumbelKeep, keptCount, ScorePredictor, selectTopTokens } from '../nn/dynamic_vit.js';
import { bipartiteSoftMatching, identitySource, mergeWeighted, sizeBias, type MergeState } from '../nn/tome.js';
import { attentionConfigOf, attentionDefaults, attentionKwargsShape, checkAttentionKwargs, fitMechanismState, type AttentionConfig } from '../nn/attention/index.js';
import { normal, truncNormal } from '../nn/init.js';
import { resamplePosEmbed } from './pos_embed.js';
import { adaptPatchEmbed, blockLayerGrouping, dropNoiseInputs } from './family_parts.js';
import { ImageModel, registerFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type ModelOutput, type NoiseInput, type TokenGrid, type TokenReduction } from './model.js';

/** The architecture keys a ViT encoder shares with the families built around one (MAE, DINO). */
export type VitEncoderShape = Pick<VitConfig, 'patchSize' | 'embedDim' | 'depth' | 'numHeads' | 'mlpRatio'> & Partial<Pick<VitConfig, 'qkvBias'>>;

const VIT_ENCODER_KEYS = ['imgSize', 'patchSize', 'inChans', 'embedDim', 'depth', 'numHeads', 'mlpRatio', 'qkvBias'] as const;

/** The `vit` config of such a family's encoder (`train --pretrained` on its weights): the keys it has of VIT_ENCODER_KEYS. */
export function vitEncoderConfig(c: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(VIT_ENCODER_KEYS.filter((k) => c[k] !== undefined).map((k) => [k, c[k]]));
}

/** The attention options (attn_type and its mechanism's keys) are AttentionConfig's, src/nn/attention/index.ts. */
export interface VitConfig extends CommonModelArgs, AttentionConfig {
  patchSize: number;
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
  /** LayerNorm epsilon (timm 1e-6; Hugging Face ViT checkpoints use 1e-12). */
  eps: number;
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
  /** Token merging (ToMe, src/nn/tome.ts): tokens merged in each block; 0 off. Needs no training. */
  tomeR: number;
  /** DynamicViT (src/nn/dynamic_vit.ts): base keep ratio ρ, stage s keeps ρ^(s+1) of the patches; 1 off. */
  dynamicKeep: number;
  /** Blocks a pruning stage runs before (0-based; 3, 6, 9 of 12); empty: a quarter, half and three quarters of the depth. */
  dynamicLocs: readonly number[];
}

export const vitDefaults: VitConfig = {
  imgSize: 224, patchSize: 16, inChans: 3, numClasses: 1000, embedDim: 768, depth: 12, numHeads: 12,
  mlpRatio: 4, qkvBias: true, classToken: true, globalPool: 'token', distilled: false, noEmbedClass: false,
  dropPathRate: 0, dropRate: 0, eps: 1e-6, seed: 0, embedLayer: 'patch', stemWidth: 24, stemStrides: [], stemNorm: 'none', tomeR: 0, dynamicKeep: 1, dynamicLocs: [],
  ...attentionDefaults,
};

/** The architecture keys of --model-kwargs (the common args have options of their own). */
const count = z.number().int().positive();
export const vitKwargsSchema = z.object({
  embedDim: count, depth: count, numHeads: count, mlpRatio: z.number().positive(), patchSize: count,
  qkvBias: z.boolean(), classToken: z.boolean(), globalPool: z.enum(['token', 'avg']), noEmbedClass: z.boolean(),
  embedLayer: z.enum(['patch', 'conv']), stemWidth: count, stemStrides: z.array(z.number().refine((v) => v === 1 || v === 2, 'each stride must be 1 or 2')).min(1), stemNorm: z.enum(['none', 'group']), eps: z.number().positive(),
  tomeR: z.number().int().nonnegative(),
  dynamicKeep: z.number().gt(0).lte(1), dynamicLocs: z.array(z.number().int().positive()).min(1),
  ...attentionKwargsShape,
}).partial().strict();

export type VitOutput = ModelOutput;

/**
 * DynamicViT's trace. Training path: each stage's hard decisions [B, N] and the last policy over
 * the patches [B, N, 1]. Inference path: each stage's top-k choice [B, count], indices into the
 * patch tokens that entered the stage (the previous stage's choice, in its order), for maps of
 * which patches were kept.
 */
export interface PruningTrace {
  decisions: Tensor[];
  policy?: Tensor;
  selected?: Tensor[];
}

/** The training step's Gumbel noise input, [B, stages · N · 2]. */
export const DYNAMIC_GUMBEL = 'dynamic_gumbel';
const DYNAMIC_GUMBEL_SALT = 0xd7a1;

/** Standard Gumbel samples −log(−log u), u uniform in (0, 1). */
function gumbelNoise(rng: Random, count: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = -Math.log(-Math.log(Math.min(Math.max(rng.uniform(), 1e-12), 1 - 1e-7)));
  return out;
}

export class VisionTransformer extends ImageModel {
  readonly family = 'vit';
  readonly config: VitConfig;
  readonly numPrefixTokens: number;
  readonly patchEmbed: PatchEmbed | ConvStemEmbed;
  readonly blocks: Block[];
  readonly norm: LayerNorm | Identity;
  readonly fcNorm: LayerNorm | Identity;
  readonly head?: Linear;
  readonly headDist?: Linear;
  /** DynamicViT's scorers, one per pruning stage (`score_predictor.N.*`); empty when dynamicKeep is 1. */
  readonly scorePredictors: ScorePredictor[] = [];
  /** The blocks a pruning stage runs before. */
  readonly pruneLocs: number[] = [];

  constructor(config: Partial<VitConfig> = {}) {
    super();
    const c = (this.config = { ...vitDefaults, ...config });
    if (c.globalPool === 'token' && !c.classToken) throw new RangeError("globalPool 'token' needs classToken");
    if (c.distilled && !c.classToken) throw new RangeError('a distilled model needs classToken');
    if (c.tomeR > 0 && c.attnType !== 'softmax') throw new RangeError(`tome_r=${c.tomeR} needs attn_type=softmax (proportional attention biases softmax logits), got ${c.attnType}`);
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
    const attention = { ...attentionConfigOf(c), layout: { prefix: this.numPrefixTokens, grid: this.patchEmbed.gridSize }, seed: c.seed };
    this.blocks = Array.from({ length: c.depth }, (_, i) =>
      this.addChild(`blocks.${i}`, new Block(c.embedDim, c.numHeads, rng, { mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, eps: c.eps, attention })));
    // timm: with avg pooling the final norm moves after the pooling (fc_norm)
    const useFcNorm = c.globalPool === 'avg';
    this.norm = useFcNorm ? new Identity() : this.addChild('norm', new LayerNorm(c.embedDim, c.eps));
    this.fcNorm = useFcNorm ? this.addChild('fc_norm', new LayerNorm(c.embedDim, c.eps)) : new Identity();
    if (c.numClasses > 0) {
      this.head = this.addChild('head', new Linear(c.embedDim, c.numClasses, rng));
      if (c.distilled) this.headDist = this.addChild('head_dist', new Linear(c.embedDim, c.numClasses, rng));
    }
    if (c.dynamicKeep < 1) {
      if (c.tomeR > 0) throw new RangeError(`dynamic_keep=${c.dynamicKeep} and tome_r=${c.tomeR} both reduce tokens; pick one`);
      if (c.attnType !== 'softmax') throw new RangeError(`dynamic_keep=${c.dynamicKeep} needs attn_type=softmax (the training policy masks softmax attention), got ${c.attnType}`);
      const locs = c.dynamicLocs.length ? [...c.dynamicLocs] : defaultPruneLocs(c.depth);
      if (!locs.length) throw new RangeError(`dynamic_keep needs at least 2 blocks to prune between, got depth ${c.depth}`);
      locs.forEach((l, i) => {
        if (l < 1 || l >= c.depth || (i > 0 && l <= locs[i - 1]!)) throw new RangeError(`dynamic_locs ${locs.join(',')}: expected increasing block indices in 1..${c.depth - 1}`);
      });
      this.pruneLocs.push(...locs);
      // after the classifier, as the reference builds them; a plain ViT checkpoint lacks them and they start fresh
      locs.forEach((_, i) => this.scorePredictors.push(this.addChild(`score_predictor.${i}`, new ScorePredictor(c.embedDim, rng))));
    }
  }

  get numFeatures(): number {
    return this.config.embedDim;
  }

  /** drop_path [B, depth·2] (attention and MLP branch of each block) and head_drop [B, D]. */
  override noiseInputs(): NoiseInput[] {
    const out = dropNoiseInputs(this.config, this.config.depth, this.config.embedDim);
    const perSample = this.pruneLocs.length * this.patchEmbed.numPatches * 2;
    if (perSample > 0) out.push({ name: DYNAMIC_GUMBEL, perSample, salt: DYNAMIC_GUMBEL_SALT, draw: (rng, batch) => gumbelNoise(rng, batch * perSample) });
    return out;
  }

  /** timm's layer ids: embeddings 0, block i → i + 1, everything after the blocks → depth + 1. */
  layerGrouping(): LayerGrouping {
    return blockLayerGrouping(this.config.depth, /^(cls_token|dist_token|pos_embed|patch_embed\.)/);
  }

  headKeys(): string[] {
    // fc_norm too: MAE's fine-tuning starts it fresh, as its pretraining has the final norm instead
    // DynamicViT's scorers too: a plain ViT checkpoint lacks them, and they start fresh as the reference's do
    const scorers = this.scorePredictors.length ? this.namedParameters().map(([k]) => k).filter((k) => k.startsWith('score_predictor.')) : [];
    return ['head.weight', 'head.bias', 'head_dist.weight', 'head_dist.bias', 'fc_norm.weight', 'fc_norm.bias', ...scorers];
  }

  /** None while tokens merge: later blocks' tokens are no longer a grid of patches (attention maps need one). */
  override tokenGrid(): TokenGrid | undefined {
    const c = this.config;
    if (c.tomeR > 0 || this.pruneLocs.length) return undefined;
    return { grid: [...this.patchEmbed.gridSize] as [number, number], prefix: this.numPrefixTokens, pool: c.globalPool === 'avg' ? 'patch-mean' : 'cls', depth: c.depth, heads: c.numHeads };
  }

  /** DynamicViT's kept tokens or ToMe's merges, traced from the inference pass (src/explain/token_reduction.ts draws them). */
  override tokenReduction(): TokenReduction | undefined {
    const kind = this.pruneLocs.length ? 'dynamicvit' : this.config.tomeR > 0 ? 'tome' : undefined;
    if (!kind) return undefined;
    return {
      kind, grid: [...this.patchEmbed.gridSize] as [number, number], prefix: this.numPrefixTokens, pruneBlocks: [...this.pruneLocs],
      trace: (x) => {
        const outputs: Record<string, Tensor> = {};
        if (kind === 'dynamicvit') {
          const pruning: PruningTrace = { decisions: [], selected: [] };
          outputs.logits = this.forwardHead(this.forwardFeatures(x, { pruning })).logits;
          pruning.selected!.forEach((t, i) => { outputs[`selected/${i}`] = t; });
        } else {
          const merged: MergeState & { traceSource: boolean } = { traceSource: true };
          outputs.logits = this.forwardHead(this.forwardFeatures(x, { merged })).logits;
          outputs.source = merged.source!;
        }
        return outputs;
      },
    };
  }

  /**
   * timm's adapt_input_conv for another channel count; pos_embed is resampled on load; the
   * weights of another attention mechanism keep this model's own mechanism state.
   */
  override adaptPretrained(sd: StateDict): { state: StateDict; notes: string[] } {
    const fitted = fitMechanismState(this, sd);
    const adapted = adaptPatchEmbed(fitted.state, this.config.inChans);
    return { state: adapted.state, notes: [...fitted.notes, ...adapted.notes] };
  }

  /** Images [B, C, H, W] → tokens [B, prefix + N, D] after the final norm. */
  forwardFeatures(x: Tensor, { noise, attentions, merged, pruning }: ForwardOptions & { attentions?: Tensor[]; merged?: MergeState & { traceSource?: boolean }; pruning?: PruningTrace } = {}): Tensor {
    const g = x.graph;
    const c = this.config;
    const d = c.embedDim;
    const dropPath = noise?.drop_path;
    // token merging's sizes (and, when the caller asks, source map) travel from block to block
    const merging: MergeState | undefined = c.tomeR > 0 ? (merged ?? {}) : undefined;
    let tokens = this.patchEmbed.forward(x); // [B, N, D]
    tokens = this.scoped(g, () => {
      const prefix = [...(c.classToken ? ['cls_token'] : []), ...(c.distilled ? ['dist_token'] : [])]
        .map((name) => expand(this.p(g, name), [BATCH, 1, d])); // [B, 1, D] each
      const pos = this.p(g, 'pos_embed');
      if (c.noEmbedClass) return concat([...prefix, add(tokens, pos)], 1);
      return add(concat([...prefix, tokens], 1), pos); // [B, T, D]
    });
    if (merging && merged?.traceSource) merging.source = this.scoped(g, () => identitySource(tokens)); // [B, T, T]
    const dyn = this.pruneLocs.length ? this.startPruning(tokens, noise?.[DYNAMIC_GUMBEL], pruning) : undefined;
    this.blocks.forEach((block, i) => {
      if (dyn) tokens = this.scoped(g, () => dyn.before(tokens, i));
      const scale = dropPath && this.scoped(g, () => ({
        attn: reshape(slice(dropPath, [1], [2 * i], [2 * i + 1]), [-1, 1, 1]), // [B, 1, 1]
        mlp: reshape(slice(dropPath, [1], [2 * i + 1], [2 * i + 2]), [-1, 1, 1]),
      }));
      const out = block.forwardWithAttention(tokens, scale, attentions !== undefined, merging ? this.mergeHooks(merging) : dyn?.hooks());
      tokens = out.out;
      if (out.attn) attentions?.push(out.attn);
    });
    return this.norm instanceof LayerNorm ? this.norm.forward(tokens) : tokens;
  }

  /**
   * DynamicViT's stages. With Gumbel noise (training): hard decisions become a policy masking
   * attention, the token count stays; without: the top-k patches by keep-score go on. `trace`
   * collects each stage's decisions [B, N] and the final policy [B, N, 1] (training path).
   */
  private startPruning(x: Tensor, gumbel: Tensor | undefined, trace?: PruningTrace) {
    const g = x.graph;
    const prefix = this.numPrefixTokens;
    const n = this.patchEmbed.numPatches;
    let decision = expand(g.scalar(1, x.dtype), [BATCH, n, 1]); // [B, N, 1] patches kept so far
    let policy: Tensor | undefined = gumbel && concat([expand(g.scalar(1, x.dtype), [BATCH, prefix, 1]), decision], 1); // [B, T, 1]
    if (trace && gumbel) trace.policy = decision;
    return {
      before: (tokens: Tensor, block: number): Tensor => {
        const stage = this.pruneLocs.indexOf(block);
        if (stage < 0) return tokens;
        const t = tokens.shape[1] as number;
        const patches = slice(tokens, [1], [prefix], [t]);
        const scores = this.scorePredictors[stage]!.forward(patches, decision); // [B, N', 2]
        if (gumbel) {
          const noise = reshape(slice(gumbel, [1], [stage * n * 2], [(stage + 1) * n * 2]), [-1, n, 2]);
          decision = mul(gumbelKeep(scores, noise), decision);
          policy = concat([expand(g.scalar(1, x.dtype), [BATCH, prefix, 1]), decision], 1);
          if (trace) { trace.decisions.push(reshape(decision, [-1, n])); trace.policy = decision; }
          return tokens;
        }
        const count = keptCount(n, this.config.dynamicKeep, stage);
        if (count >= t - prefix) return tokens; // ρ = 1 keeps every token as it is
        const kept = selectTopTokens(tokens, reshape(slice(scores, [2], [0], [1]), [-1, t - prefix]), prefix, count);
        trace?.selected?.push(reshape(kept.index, [-1, count]));
        decision = expand(g.scalar(1, x.dtype), [BATCH, count, 1]);
        return kept.x;
      },
      hooks: (): MergeHooks | undefined => (policy ? { policy } : undefined),
    };
  }

  /** ToMe between attention and MLP; proportional attention once tokens have sizes. `state` is updated in place. */
  private mergeHooks(state: MergeState): MergeHooks {
    const c = this.config;
    return {
      logitBias: state.size && sizeBias(state.size),
      between: (x, keys) => {
        const merge = bipartiteSoftMatching(keys, c.tomeR, { classToken: c.classToken, distillToken: c.distilled });
        if (!merge) return x;
        const out = mergeWeighted(merge, x, state);
        Object.assign(state, out.state);
        return out.x;
      },
    };
  }

  /** Pooling, fc_norm and head(s): tokens [B, T, D] → logits [B, classes] (or features when headless). */
  forwardHead(tokens: Tensor, { noise }: ForwardOptions = {}): { logits: Tensor; features: Tensor } {
    const g = tokens.graph;
    const c = this.config;
    const d = c.embedDim;
    const token = (i: number) => reshape(slice(tokens, [1], [i], [i + 1]), [-1, d]); // [B, D]
    let features = this.scoped(g, () =>
      c.globalPool === 'avg' ? mean(slice(tokens, [1], [this.numPrefixTokens], [tokens.shape[1] as number]), 1) : token(0));
    if (this.fcNorm instanceof LayerNorm) features = this.fcNorm.forward(features);
    const headDrop = noise?.head_drop;
    const dropped = headDrop ? this.scoped(g, () => mul(features, headDrop)) : features;
    if (!this.head) return { logits: dropped, features };
    let logits = this.head.forward(dropped);
    if (this.headDist) {
      const dist = this.headDist.forward(this.scoped(g, () => token(1)));
      logits = this.scoped(g, () => div(add(logits, dist), 2)); // DeiT: average of both heads
    }
    return { logits, features };
  }

  /**
   * Loads a timm-layout state dict. A pos_embed for another grid is resampled (bicubic,
   * antialiased, as timm does) when `resamplePos` is set.
   */
  override loadStateDict(sd: StateDict, strict = true, { resamplePos = false } = {}): { missing: string[]; unexpected: string[] } {
    sd = fitMechanismState(this, sd).state; // a checkpoint of another attention mechanism
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

registerFamily<VitConfig>({
  name: 'vit',
  defaults: vitDefaults,
  kwargsSchema: vitKwargsSchema,
  create: (config) => new VisionTransformer(config),
  tinyArgs: { imgSize: 16, patchSize: 4, inChans: 3, numClasses: 5, embedDim: 24, depth: 2, numHeads: 2, mlpRatio: 2, distilled: true },
  // stem settings on a model without a conv stem would be ignored silently: an error instead
  checkKwargs(kwargs, model, name) {
    const given = ['stem_width', 'stem_strides', 'stem_norm'].filter((k) => kwargs[k.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase())] !== undefined);
    const c = (model as VisionTransformer).config;
    if (given.length && c.embedLayer !== 'conv') {
      return `${given.join(', ')} configure a convolutional stem, but ${name} has embed_layer=${c.embedLayer}; add embed_layer=conv or pick a conv-stem model`;
    }
    return checkAttentionKwargs(kwargs, c.attnType);
  },
});
