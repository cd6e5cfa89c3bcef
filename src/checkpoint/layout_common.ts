/**
 * Shared pieces of the layout converters: the converted-checkpoint type, reading tensor files,
 * key renaming that rejects unknown keys, and inferring a timm ViT config from weight shapes.
 */
import { readFileSync } from 'node:fs';
import { VisionTransformer, vitDefaults, type VitConfig } from '../models/vit.js';
import { getModelEntry, listModels } from '../models/registry.js';
import type { Interpolation } from '../models/pos_embed.js';
import type { StateDict, StateTensor } from '../nn/module.js';
import { parseSafetensors, toFloat32, type SafeTensor } from './safetensors.js';
import { isZip } from './torch_zip.js';
import { parseTorchFile } from './torch_file.js';

export type LayoutName = 'timm' | 'hf' | 'torchvision';

export interface Preprocessing {
  /** [C, H, W] */
  inputSize: [number, number, number];
  mean: number[];
  std: number[];
  interpolation: Interpolation;
  cropPct: number;
}

export interface ForeignCheckpoint {
  layout: LayoutName;
  /** The file or directory read. */
  source: string;
  /** timm keys, float32. */
  stateDict: StateDict;
  /** The model family; 'vit' when absent (the Hugging Face and torchvision layouts are ViTs). */
  family?: string;
  /** The family's config (a VitConfig for ViTs). */
  config: VitConfig;
  /** A registered or timm architecture name when the files say so. */
  modelName?: string;
  classNames?: string[];
  preprocessing?: Partial<Preprocessing>;
  /** Known keys that are not model weights here (HF pooler, mask token, position_ids buffers). */
  dropped: string[];
  /** Raw `__metadata__.tessera` of a tessera checkpoint. */
  tessera?: Record<string, unknown>;
}

/** What the weights cannot say: attention heads (or a registered architecture that knows them). */
export interface LayoutHints {
  numHeads?: number;
  /** A registered model name whose config supplies the heads. */
  model?: string;
  /** Which state dict of a torch training checkpoint to read (timm's `state_dict_ema`). */
  stateDictKey?: string;
}

export class LayoutError extends Error {
  override name = 'LayoutError';
}

export type RawTensors = Map<string, SafeTensor>;
export type KeyRules = [RegExp, string][];

/** Reads a .safetensors, .pth/.bin/.pt (zip or legacy) file, telling them apart by content. */
export function readTensorFile(path: string, stateDictKey?: string): { tensors: RawTensors; metadata: Record<string, string> } {
  const buf = readFileSync(path);
  // safetensors: an 8-byte length, then '{'; torch: a zip, or a legacy pickle (PROTO 0x80)
  const safetensors = buf.byteLength > 8 && buf[8] === 0x7b;
  if (!safetensors && (isZip(buf) || buf[0] === 0x80)) return { tensors: parseTorchFile(buf, path, stateDictKey), metadata: {} };
  if (stateDictKey !== undefined) throw new LayoutError(`${path}: has no ${stateDictKey} state dict (a .safetensors file holds one, unnamed)`);
  const file = parseSafetensors(buf, path);
  return { tensors: file.tensors, metadata: file.metadata };
}

/** Float tensors as float32; non-float tensors are allowed only for droppable buffers. */
export function toStateDict(raw: RawTensors, source: string, droppable: RegExp[], dropped: string[]): StateDict {
  const sd: StateDict = {};
  for (const [k, t] of raw) {
    if (k === '__proto__') throw new LayoutError(`${source}: invalid tensor name "__proto__"`);
    if (isBatchCount(k, t)) { sd[k] = batchCount(t); continue; }
    if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) {
      if (droppable.some((r) => r.test(k))) { dropped.push(k); continue; }
      throw new LayoutError(`${source}: "${k}" has dtype ${t.dtype}, expected floating-point weights`);
    }
    sd[k] = { data: toFloat32(t, `${source}: ${k}`), shape: t.shape };
  }
  return sd;
}

/** BatchNorm's `num_batches_tracked`, an int64 scalar in PyTorch files: kept as a float32 buffer (exact up to 2^24). */
export const isBatchCount = (key: string, t: SafeTensor): boolean => t.dtype === 'I64' && key.endsWith('num_batches_tracked') && t.shape.length === 0;

export function batchCount(t: SafeTensor): StateTensor {
  const v = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  return { data: Float32Array.of(t.bytes.byteLength >= 8 ? Number(v.getBigInt64(0, true)) : 0), shape: t.shape };
}

/** Renames every key by the first matching rule; keys matching `droppable` are set aside; any other key is an error. */
export function renameKeys(sd: StateDict, rules: KeyRules, droppable: RegExp[], dropped: string[], what: string): StateDict {
  const out: StateDict = {};
  const unknown: string[] = [];
  for (const [k, t] of Object.entries(sd)) {
    const rule = rules.find(([re]) => re.test(k));
    if (rule) out[k.replace(rule[0], rule[1])] = t;
    else if (droppable.some((r) => r.test(k))) dropped.push(k);
    else unknown.push(k);
  }
  if (unknown.length) throw new LayoutError(`${what}: unknown keys (not part of a ViT tessera can load): ${unknown.join(', ')}`);
  return out;
}

const isSquare = (n: number) => n > 0 && Math.round(Math.sqrt(n)) ** 2 === n;

/** Heads from the hints, a registered architecture of the same width, or timm's 64-dim heads. */
export function resolveHeads(dim: number, depth: number, hints: LayoutHints, source: string, known: Record<string, number> = {}): number {
  if (hints.numHeads) return hints.numHeads;
  const byName = hints.model ? getModelEntry(hints.model).config as Partial<VitConfig> : undefined;
  if (byName?.numHeads && (byName.embedDim ?? vitDefaults.embedDim) === dim) return byName.numHeads;
  const fromTable = known[`${dim}x${depth}`];
  if (fromTable) return fromTable;
  if (dim % 64 === 0) return dim / 64;
  const same = listModels().map((e) => e.config as Partial<VitConfig>).find((c) => c.embedDim === dim && c.depth === depth);
  if (same?.numHeads) return same.numHeads;
  throw new LayoutError(`${source}: the weights do not say how many attention heads a ${dim}-dim model has; pass numHeads (or --model NAME of a registered architecture)`);
}

/** Infers a VitConfig from timm-key weights. `numHeads` and `eps` come from the caller. */
export function inferTimmConfig(sd: StateDict, source: string, opts: { numHeads: (dim: number, depth: number) => number; eps?: number }): VitConfig {
  const need = (k: string) => sd[k] ?? (() => { throw new LayoutError(`${source}: missing ${k}`); })();
  const [embedDim, inChans, patchSize, pw] = need('patch_embed.proj.weight').shape as number[];
  if (patchSize !== pw) throw new LayoutError(`${source}: non-square patches ${patchSize}×${pw} are not supported`);
  const unsupported = Object.keys(sd).filter((k) => /^(reg_token|norm_pre\.|attn_pool\.|pre_logits\.|head\.fc\.)|\.ls[12]\.|\.(q|k)_norm\./.test(k));
  if (unsupported.length) throw new LayoutError(`${source}: timm features tessera's ViT does not have (register tokens, layer scale, qk-norm, pre-logits, attention pooling): ${unsupported.join(', ')}`);
  const classToken = 'cls_token' in sd;
  const distilled = 'dist_token' in sd;
  const prefix = (classToken ? 1 : 0) + (distilled ? 1 : 0);
  const posTokens = need('pos_embed').shape[1]!;
  let noEmbedClass = false;
  let grid = posTokens - prefix;
  if (!isSquare(grid) && prefix > 0 && isSquare(posTokens)) { noEmbedClass = true; grid = posTokens; }
  if (!isSquare(grid)) throw new LayoutError(`${source}: pos_embed has ${posTokens} tokens, not ${prefix} prefix tokens plus a square grid`);
  let depth = 0;
  while (`blocks.${depth}.norm1.weight` in sd) depth++;
  if (depth === 0) throw new LayoutError(`${source}: no transformer blocks (blocks.0.norm1.weight)`);
  const hidden = need('blocks.0.mlp.fc1.weight').shape[0]!;
  const fcNorm = 'fc_norm.weight' in sd;
  if (!fcNorm && !classToken) throw new LayoutError(`${source}: average pooling with a final norm instead of fc_norm is not supported`);
  const head = sd['head.weight'];
  return {
    ...vitDefaults,
    imgSize: Math.round(Math.sqrt(grid)) * patchSize!,
    patchSize: patchSize!, inChans: inChans!, embedDim: embedDim!, depth,
    numHeads: opts.numHeads(embedDim!, depth),
    mlpRatio: hidden / embedDim!,
    qkvBias: 'blocks.0.attn.qkv.bias' in sd,
    classToken, distilled, noEmbedClass,
    globalPool: fcNorm ? 'avg' : 'token',
    numClasses: head ? head.shape[0]! : 0,
    eps: opts.eps ?? 1e-6,
  };
}

/** Every key and shape of the model `config` builds, against the converted state dict. */
export function checkAgainstModel(sd: StateDict, config: VitConfig, source: string): void {
  const own = new VisionTransformer(config).namedParameters();
  const ownKeys = new Set(own.map(([k]) => k));
  const unknown = Object.keys(sd).filter((k) => !ownKeys.has(k));
  const missing = own.filter(([k]) => !(k in sd)).map(([k]) => k);
  const shapes = own.filter(([k, p]) => k in sd && sd[k]!.shape.join() !== p.shape.join())
    .map(([k, p]) => `${k} [${sd[k]!.shape.join(', ')}] vs [${p.shape.join(', ')}]`);
  const problems = [
    unknown.length ? `unknown keys: ${unknown.join(', ')}` : '',
    missing.length ? `missing keys: ${missing.join(', ')}` : '',
    shapes.length ? `shape mismatch: ${shapes.join('; ')}` : '',
  ].filter(Boolean);
  if (problems.length) throw new LayoutError(`${source}: not a ViT tessera can build: ${problems.join('; ')}`);
}

/** A registered entry of the checkpoint's family whose architecture args all equal the inferred config (other families only). */
export function matchingEntry(fc: ForeignCheckpoint): string | undefined {
  if (!fc.family || fc.family === 'vit') return undefined;
  const c = fc.config as unknown as Record<string, unknown>;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return listModels().find((e) => e.family === fc.family && Object.entries(e.config).every(([k, v]) => k === 'numClasses' || same(c[k], v)))?.name;
}
