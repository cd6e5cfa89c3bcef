/**
 * The model interface every family implements (ViT, and the families to come), and the family
 * table the registry builds them from. Nothing outside `src/models/` (and a family's own
 * foreign-layout importer) names a concrete family class: the checkpoint loader, the trainer,
 * export, explain, attack, serve and bench go through `ImageModel`.
 */
import type { z } from 'zod';
import type { Tensor } from '../ir/tensor.js';
import type { Random } from '../random.js';
import { Module, type StateDict } from '../nn/module.js';
import { redrawScheduledBuffers } from '../nn/attention/mechanism.js';

/** The arguments every family's config accepts, whatever else it has. */
export interface CommonModelArgs {
  imgSize: number;
  inChans: number;
  /** 0 gives a features-only model (no head). */
  numClasses: number;
  /** Stochastic depth rate of the last block (timm's drop_path_rate). */
  dropPathRate: number;
  /** Dropout on the pooled features before the head (timm's drop_rate). */
  dropRate: number;
  /** Seed of the initialisation. */
  seed: number;
}

/**
 * Host-drawn randomness a training step needs (drop-path masks, dropout masks): the model
 * declares each input, and the trainer draws it from the run's seeded stream, so a resumed run
 * draws the same values.
 */
export interface NoiseInput {
  /** Input name of the training step, e.g. `drop_path`. */
  name: string;
  /** Values per sample: the input's shape is [batch, perSample]. */
  perSample: number;
  /** Salt of this input's random stream (mixed with the run seed and micro-batch index). */
  salt: number;
  draw(rng: Random, batch: number): Float32Array;
}

export interface ForwardOptions {
  /** Training mode: batch statistics in norms, buffer updates traced (see Module.updateBuffer). */
  train?: boolean;
  /** The step's noise inputs, by `NoiseInput.name`. */
  noise?: Record<string, Tensor>;
  /** Also return each global-attention block's probabilities (for rollout maps). */
  attention?: boolean;
}

export interface ModelOutput {
  /** [B, classes], or the pooled features of a headless model. */
  logits: Tensor;
  /** The pooled features fed to the head [B, D]. */
  features: Tensor;
  /** Each block's attention probabilities [B, H, T, T], when requested and the family has them. */
  attentions?: Tensor[];
}

/**
 * How parameters group into layers, as timm's `group_matcher` / layer-decay ids: 0 holds the
 * embeddings, 1..`blocks` the blocks in order, `blocks` + 1 everything after them (final norms,
 * head). Layer decay, `--freeze backbone` and the unfreeze schedule use it.
 */
export interface LayerGrouping {
  blocks: number;
  layerOf(key: string): number;
}

/**
 * The token layout of a model whose attention maps can be drawn over the image: `prefix` tokens
 * (class, distillation) followed by a `grid` of patch tokens in row-major order, pooled as `pool`.
 */
export interface TokenGrid {
  grid: [number, number];
  prefix: number;
  pool: 'cls' | 'patch-mean';
  /** Attention blocks and heads per block (rollout, per-head grids). */
  depth: number;
  heads: number;
}

/**
 * A token-reducing model's record of what it did to an image (explain --method tokens): its patch
 * grid and a trace of the inference pass that outputs, beside `logits`, DynamicViT's per-stage
 * choices `selected/<i>` [B, count] (indices into the patch tokens that entered stage i) or
 * ToMe's final source map `source` [B, T, T₀].
 */
export interface TokenReduction {
  kind: 'dynamicvit' | 'tome';
  grid: [number, number];
  prefix: number;
  /** The blocks before which DynamicViT prunes (empty for ToMe). */
  pruneBlocks: readonly number[];
  trace(x: Tensor): Record<string, Tensor>;
}

export interface ModelInputSpec {
  channels: number;
  height: number;
  width: number;
  /** Range of the normalised pixels before mean/std: [0, 1] for every family so far. */
  valueRange: [number, number];
}

export abstract class ImageModel extends Module {
  /** The family's name in the family table, stored in checkpoints. */
  abstract readonly family: string;
  /**
   * The resolved, JSON-serialisable config: stored in checkpoints, given back to `create`. Only
   * the common args are typed here; the rest is the family's own.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  abstract readonly config: CommonModelArgs & Record<string, any>;

  get numClasses(): number {
    return this.config.numClasses;
  }

  /** Input shape [C, H, W]. */
  get inputShape(): [number, number, number] {
    return [this.config.inChans, this.config.imgSize, this.config.imgSize];
  }

  get inputSpec(): ModelInputSpec {
    const [channels, height, width] = this.inputShape;
    return { channels, height, width, valueRange: [0, 1] };
  }

  /** Width of the pooled features the head sees. */
  abstract get numFeatures(): number;

  /** Images [B, C, H, W] → the family's feature tensor (tokens, a feature map). */
  abstract forwardFeatures(x: Tensor, opts?: ForwardOptions & { attentions?: Tensor[] }): Tensor;
  /** The family's features → pooled features and logits. */
  abstract forwardHead(features: Tensor, opts?: ForwardOptions): { logits: Tensor; features: Tensor };

  forward(x: Tensor, opts: ForwardOptions = {}): ModelOutput {
    const attentions: Tensor[] | undefined = opts.attention ? [] : undefined;
    const features = this.forwardFeatures(x, { ...opts, attentions });
    return { ...this.forwardHead(features, opts), attentions };
  }

  /**
   * Host-side state a training step of optimiser step `step` needs first: buffers on a schedule
   * (Performer's random features, redrawn every so many steps from the model seed) are brought to
   * that step's draw. Eval and export never call it, so such buffers stay as saved there.
   */
  beforeTrainStep(step: number): void {
    redrawScheduledBuffers(this, step);
  }

  /** The host-drawn noise a training step of this model needs (none by default). */
  noiseInputs(): NoiseInput[] {
    return [];
  }

  abstract layerGrouping(): LayerGrouping;

  /** Keys of the classifier (and a norm before it), re-initialised when pretrained weights have another class count or lack them. */
  abstract headKeys(): string[];

  /** Attention maps over a patch grid: present where the family has global attention. */
  tokenGrid(): TokenGrid | undefined {
    return undefined;
  }

  /** What token reduction did to an image: present where the model drops or merges tokens. */
  tokenReduction(): TokenReduction | undefined {
    return undefined;
  }

  /**
   * Fits a pretrained state dict of the same family to this model's input (channels, image
   * size): timm's adapt_input_conv, position-table resampling. Returns what changed, for the log.
   */
  adaptPretrained(sd: StateDict): { state: StateDict; notes: string[] } {
    return { state: sd, notes: [] };
  }

  /** Loads a state dict; `resamplePos` lets a family fit size-dependent tensors (pos_embed) first. */
  override loadStateDict(sd: StateDict, strict = true, _opts: { resamplePos?: boolean } = {}): { missing: string[]; unexpected: string[] } {
    return super.loadStateDict(sd, strict);
  }
}

/** A family: its config schema (for --model-kwargs and checkpoints), defaults and constructor. */
export interface ModelFamily<C extends CommonModelArgs = CommonModelArgs> {
  name: string;
  defaults: C;
  /**
   * The architecture keys `--model-kwargs` may override (camelCase, partial and strict: unknown
   * keys are errors). The common args (classes, drop rates, seed) have options of their own.
   */
  kwargsSchema: z.ZodObject;
  create(config: Partial<C>): ImageModel;
  /**
   * A tiny config of the family (a few thousand parameters, a small image) that still has every
   * kind of layer: the registry smoke test trains a step of it, so each family costs the suite
   * about a second whatever the size of its registered entries.
   */
  tinyArgs: Partial<C>;
  /**
   * Reads this family's architecture from a timm-layout state dict (key names and shapes only,
   * never the values: callers may pass shapes without data), or
   * returns undefined when the keys are not this family's: a bare checkpoint then needs no --model.
   */
  inferConfig?(sd: StateDict): Partial<C> | undefined;
  /**
   * A pretraining family whose encoder is a model of another family (MAE's is a ViT): the
   * encoder's config from this family's, so `train --pretrained` fine-tunes the encoder.
   */
  encoder?: {
    family: string;
    config(config: Record<string, unknown>): Record<string, unknown>;
    /** The encoder's tensors under its own family's keys, when they differ (DINO's `backbone.` prefix); default: as saved. */
    state?(sd: StateDict): StateDict;
  };
  /** A one-line error for kwargs that validate alone but make no sense for model `name`, or undefined. */
  checkKwargs?(kwargs: Record<string, unknown>, model: ImageModel, name: string): string | undefined;
}

const families = new Map<string, ModelFamily<any>>();

export function registerFamily<C extends CommonModelArgs>(family: ModelFamily<C>): void {
  if (families.has(family.name)) throw new Error(`model family "${family.name}" is registered twice`);
  families.set(family.name, family);
}

export function getFamily(name: string): ModelFamily {
  const f = families.get(name);
  if (!f) throw new RangeError(`unknown model family "${name}"; known families: ${[...families.keys()].join(', ')}`);
  return f;
}

/** The first family other than ViT that recognises a timm-layout state dict, with its inferred config. */
export function inferFamily(sd: StateDict): { family: string; config: Record<string, unknown> } | undefined {
  for (const f of families.values()) {
    const config = f.inferConfig?.(sd);
    if (config) return { family: f.name, config: { ...f.defaults, ...config } };
  }
  return undefined;
}

export function listFamilies(): string[] {
  return [...families.keys()];
}
