/**
 * The attention mechanisms a ViT-family block can use (`attn_type` in --model-kwargs, config
 * files and the library API), their options, and the table that builds them. A new mechanism is
 * one file in this folder plus its row in `mechanisms` below.
 */
import { z } from 'zod';
import type { StateDict } from '../module.js';
import type { Module } from '../module.js';
import { isMechanismState, type AttentionMechanism, type MechanismContext } from './mechanism.js';
import { SoftmaxAttention } from './softmax.js';
import { PerformerAttention } from './performer.js';
import { LinearAttention } from './linear.js';
import { SparseAttention } from './sparse.js';
import { AxialAttention } from './axial.js';

export { AttentionMechanism, redrawScheduledBuffers, type MechanismContext, type TokenLayout } from './mechanism.js';
export { SoftmaxAttention, PerformerAttention, LinearAttention, SparseAttention, AxialAttention };

export const ATTN_TYPES = ['softmax', 'performer', 'linear', 'sparse', 'axial'] as const;
export type AttnType = (typeof ATTN_TYPES)[number];

/** The mechanism and its options, as model configs carry them (camelCase of the --model-kwargs keys). */
export interface AttentionConfig {
  /** softmax (timm's), performer (FAVOR+), linear (elu + 1), sparse (BigBird blocks), axial (rows then columns). */
  attnType: AttnType;
  /** softmax: query rows per chunk; 0 chunks sequences of 2,048+ tokens by 512 rows. */
  queryChunk: number;
  /** performer: random features per head; 0 = round(D ln D). */
  nbFeatures: number;
  /** performer: optimiser steps between feature redraws in training; 0 = never. */
  featureRedrawInterval: number;
  /** sparse: patch tokens per block. */
  blockSize: number;
  /** sparse: random blocks each query block attends. */
  numRandomBlocks: number;
  /** sparse: leading blocks that attend and are attended everywhere (the prefix tokens always are). */
  numGlobalBlocks: number;
  /** axial: Axial-DeepLab's relative positional terms (adds attn.axial.relative_{width,height}). */
  axialRelPos: boolean;
}

export const attentionDefaults: AttentionConfig = {
  attnType: 'softmax', queryChunk: 0, nbFeatures: 0, featureRedrawInterval: 1000,
  blockSize: 16, numRandomBlocks: 3, numGlobalBlocks: 1, axialRelPos: false,
};

/** The attention keys of --model-kwargs (spread into a family's strict schema). */
export const attentionKwargsShape = {
  attnType: z.enum(ATTN_TYPES),
  queryChunk: z.number().int().nonnegative(),
  nbFeatures: z.number().int().nonnegative(),
  featureRedrawInterval: z.number().int().nonnegative(),
  blockSize: z.number().int().positive(),
  numRandomBlocks: z.number().int().nonnegative(),
  numGlobalBlocks: z.number().int().nonnegative(),
  axialRelPos: z.boolean(),
};

/** Which mechanism each option configures: giving one for another mechanism is an error, not ignored. */
const optionOwner: Record<Exclude<keyof AttentionConfig, 'attnType'>, AttnType> = {
  queryChunk: 'softmax', nbFeatures: 'performer', featureRedrawInterval: 'performer',
  blockSize: 'sparse', numRandomBlocks: 'sparse', numGlobalBlocks: 'sparse', axialRelPos: 'axial',
};

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A one-line complaint about options of another mechanism than `attnType`, or undefined. */
export function checkAttentionKwargs(kwargs: Record<string, unknown>, attnType: AttnType): string | undefined {
  const foreign = Object.entries(optionOwner).filter(([k, owner]) => kwargs[k] !== undefined && owner !== attnType);
  if (!foreign.length) return undefined;
  return `${foreign.map(([k, owner]) => `${snake(k)} configures ${owner} attention`).join('; ')}, but attn_type=${attnType}; add attn_type=${foreign[0]![1]} or drop ${foreign.length > 1 ? 'them' : 'it'}`;
}

/** The attention part of a config (other keys ignored), defaults filled in. */
export function attentionConfigOf(c: Partial<AttentionConfig>): AttentionConfig {
  const out = { ...attentionDefaults };
  for (const k of Object.keys(attentionDefaults) as (keyof AttentionConfig)[]) {
    if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  }
  return out;
}

const mechanisms: Record<AttnType, (ctx: MechanismContext, c: AttentionConfig) => AttentionMechanism> = {
  softmax: (ctx, c) => new SoftmaxAttention(ctx, c.queryChunk),
  performer: (ctx, c) => new PerformerAttention(ctx, c.nbFeatures, c.featureRedrawInterval),
  linear: (ctx) => new LinearAttention(ctx),
  sparse: (ctx, c) => new SparseAttention(ctx, { blockSize: c.blockSize, numRandomBlocks: c.numRandomBlocks, numGlobalBlocks: c.numGlobalBlocks }),
  axial: (ctx, c) => new AxialAttention(ctx, c.axialRelPos),
};

/** The child name a mechanism's state lives under (`attn.<name>.…`): lucidrains' for Performer. */
export const mechanismChildName: Record<AttnType, string> = {
  softmax: 'softmax', performer: 'fast_attention', linear: 'linear', sparse: 'sparse', axial: 'axial',
};

export function createMechanism(ctx: MechanismContext, config: Partial<AttentionConfig> = {}): AttentionMechanism {
  const c = attentionConfigOf(config);
  const make = mechanisms[c.attnType];
  if (!make) throw new RangeError(`unknown attn_type "${String(c.attnType)}"; expected one of ${ATTN_TYPES.join(', ')}`);
  return make(ctx, c);
}

/** Keys of mechanism state (`blocks.3.attn.fast_attention.projection_matrix`, `….attn.axial.relative_width`). */
const MECHANISM_KEY = new RegExp(`\\.attn\\.(${[...new Set(Object.values(mechanismChildName))].join('|')})\\.`);

/**
 * A state dict of one attention mechanism fitted to a model with another: the model's own
 * mechanism state that the dict lacks is kept (Performer's features as drawn, axial relative
 * terms as initialised), and mechanism state the model has no place for is dropped. So a
 * softmax checkpoint loads into a performer model and back. Returns what changed, for the log.
 */
export function fitMechanismState(model: Module, sd: StateDict): { state: StateDict; notes: string[] } {
  const own = new Map(model.namedState());
  const kept = [...own].filter(([k, t]) => !(k in sd) && isMechanismState(t)).map(([k]) => k);
  const dropped = Object.keys(sd).filter((k) => !own.has(k) && MECHANISM_KEY.test(k));
  if (!kept.length && !dropped.length) return { state: sd, notes: [] };
  const state: StateDict = { ...sd };
  for (const k of dropped) delete state[k];
  for (const k of kept) state[k] = { data: own.get(k)!.data, shape: own.get(k)!.shape };
  const notes = [
    ...(kept.length ? [`${kept.length} attention-mechanism tensors the checkpoint lacks keep this model's own values (${kept[0]}${kept.length > 1 ? ', …' : ''})`] : []),
    ...(dropped.length ? [`${dropped.length} attention-mechanism tensors of another mechanism dropped (${dropped[0]}${dropped.length > 1 ? ', …' : ''})`] : []),
  ];
  return { state, notes };
}
