/**
 * CLIP checkpoints: OpenAI's / open_clip's bare state dict (architecture from the shapes, as
 * OpenAI's build_model reads it) and Hugging Face's CLIPModel directory (config.json +
 * model.safetensors | pytorch_model.bin), read into OpenAI's keys and written back in either.
 * The tokenizer's files are found beside the weights (see src/text/clip_tokenizer.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { StateDict, StateTensor } from '../nn/module.js';
import { ClipModel, inferClipConfig, type ClipActivation, type ClipConfig } from '../models/clip.js';
import { LayoutError, readTensorFile, toStateDict } from './layout_common.js';
import { weightsIn } from './layouts.js';
import { writeSafetensors } from './safetensors.js';
import { makeDir, writeFileAtomic } from './atomic.js';
import { serializeTorchFile } from './torch_file.js';
import type { ClipTokenizer } from '../text/clip_tokenizer.js';

export type ClipLayout = 'openai' | 'hf';

export interface ClipCheckpoint {
  layout: ClipLayout;
  source: string;
  config: ClipConfig;
  /** OpenAI keys. */
  stateDict: StateDict;
  /** The folder searched for tokenizer files (the directory, or the weights file's folder). */
  folder: string;
  dropped: string[];
}

/** Integer entries of OpenAI's JIT archives and HF's position_ids buffers: not weights. */
const DROPPABLE = [/^(input_resolution|context_length|vocab_size)$/, /position_ids$/];

/** Reads a CLIP file or directory. */
export function readClipCheckpoint(path: string): ClipCheckpoint {
  if (!existsSync(path)) throw new LayoutError(`checkpoint ${path} does not exist`);
  const isDir = statSync(path).isDirectory();
  const file = isDir ? weightsIn(path) : path;
  const dropped: string[] = [];
  const raw = readTensorFile(file).tensors;
  let sd = toStateDict(raw, file, DROPPABLE, dropped);
  for (const k of Object.keys(sd)) if (DROPPABLE.some((r) => r.test(k))) { dropped.push(k); delete sd[k]; }
  const folder = isDir ? path : dirname(path);
  const hfConfigPath = join(folder, 'config.json');
  const hf = Object.keys(sd).some((k) => k.startsWith('vision_model.') || k.startsWith('text_model.'));
  if (hf) {
    if (!existsSync(hfConfigPath)) throw new LayoutError(`${file}: Hugging Face CLIP weights need the config.json beside them (attention heads, activation)`);
    const hfConfig = JSON.parse(readFileSync(hfConfigPath, 'utf8')) as Record<string, any>;
    sd = fromHf(sd, file);
    const config = inferClipConfig(sd, actOf(hfConfig.vision_config?.hidden_act, hfConfigPath));
    if (!config) throw new LayoutError(`${file}: no CLIP ViT image tower (vision_model.embeddings.patch_embedding.weight)`);
    config.vision.heads = hfConfig.vision_config?.num_attention_heads ?? config.vision.heads;
    config.text.heads = hfConfig.text_config?.num_attention_heads ?? config.text.heads;
    config.eps = hfConfig.vision_config?.layer_norm_eps ?? config.eps;
    return { layout: 'hf', source: path, config, stateDict: sd, folder, dropped };
  }
  const config = inferClipConfig(sd);
  if (!config) throw new LayoutError(`${file}: not a CLIP ViT checkpoint (expected visual.conv1.weight and visual.proj)`);
  return { layout: 'openai', source: path, config, stateDict: sd, folder, dropped };
}

function actOf(act: unknown, source: string): ClipActivation {
  if (act === undefined || act === 'quick_gelu') return 'quick_gelu';
  if (act === 'gelu') return 'gelu';
  throw new LayoutError(`${source}: hidden_act "${String(act)}" is not supported, expected quick_gelu or gelu`);
}

/** Builds the CLIP of a checkpoint with its weights. */
export function loadClip(path: string): { model: ClipModel; checkpoint: ClipCheckpoint } {
  const checkpoint = readClipCheckpoint(path);
  const model = new ClipModel(checkpoint.config);
  const textless = !('token_embedding.weight' in checkpoint.stateDict);
  if (textless) throw new LayoutError(`${path}: has no text tower (token_embedding.weight, transformer.resblocks.*): zero-shot needs a full CLIP checkpoint`);
  model.loadStateDict(checkpoint.stateDict);
  return { model, checkpoint };
}

// ---- Hugging Face CLIPModel ↔ OpenAI keys -----------------------------------------------------

/** Whole-tensor renames (HF → OpenAI); per-layer keys are handled by `layerKey`. */
const HF_NAMES: [string, string][] = [
  ['text_model.embeddings.token_embedding.weight', 'token_embedding.weight'],
  ['text_model.embeddings.position_embedding.weight', 'positional_embedding'],
  ['text_model.final_layer_norm.', 'ln_final.'],
  ['vision_model.embeddings.class_embedding', 'visual.class_embedding'],
  ['vision_model.embeddings.patch_embedding.weight', 'visual.conv1.weight'],
  ['vision_model.embeddings.position_embedding.weight', 'visual.positional_embedding'],
  ['vision_model.pre_layrnorm.', 'visual.ln_pre.'], // sic: HF's key
  ['vision_model.post_layernorm.', 'visual.ln_post.'],
  ['logit_scale', 'logit_scale'],
];
const TOWERS: [string, string][] = [['vision_model.encoder.layers.', 'visual.transformer.resblocks.'], ['text_model.encoder.layers.', 'transformer.resblocks.']];
const LAYER_PARTS: [string, string][] = [
  ['self_attn.out_proj.', 'attn.out_proj.'], ['layer_norm1.', 'ln_1.'], ['layer_norm2.', 'ln_2.'], ['mlp.fc1.', 'mlp.c_fc.'], ['mlp.fc2.', 'mlp.c_proj.'],
];
const transposed = (t: StateTensor): StateTensor => {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { data: out, shape: [c, r] };
};
const rename = (k: string, pairs: [string, string][], from: 0 | 1): string | undefined => {
  for (const p of pairs) if (k === p[from] || (p[from].endsWith('.') && k.startsWith(p[from]))) return p[1 - from] + k.slice(p[from].length);
  return undefined;
};

function fromHf(sd: StateDict, source: string): StateDict {
  const out: StateDict = {};
  const qkv = new Map<string, StateTensor[]>();
  const unknown: string[] = [];
  for (const [k, t] of Object.entries(sd)) {
    if (k === 'visual_projection.weight') { out['visual.proj'] = transposed(t); continue; }
    if (k === 'text_projection.weight') { out.text_projection = transposed(t); continue; }
    const tower = TOWERS.find(([hf]) => k.startsWith(hf));
    if (tower) {
      const [i, ...rest] = k.slice(tower[0].length).split('.');
      const part = rest.join('.');
      const m = /^self_attn\.([qkv])_proj\.(weight|bias)$/.exec(part);
      if (m) {
        const key = `${tower[1]}${i}.attn.in_proj_${m[2]}`;
        const parts = qkv.get(key) ?? [];
        parts['qkv'.indexOf(m[1]!)] = t;
        qkv.set(key, parts);
        continue;
      }
      const mapped = rename(part, LAYER_PARTS, 0);
      if (mapped) { out[`${tower[1]}${i}.${mapped}`] = t; continue; }
    }
    const mapped = rename(k, HF_NAMES, 0);
    if (mapped) out[mapped] = t;
    else unknown.push(k);
  }
  if (unknown.length) throw new LayoutError(`${source}: unknown Hugging Face CLIP keys: ${unknown.join(', ')}`);
  for (const [key, parts] of qkv) {
    if (parts.filter(Boolean).length !== 3) throw new LayoutError(`${source}: ${key} needs q_proj, k_proj and v_proj`);
    const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
    let o = 0;
    for (const p of parts) { data.set(p.data, o); o += p.data.length; }
    out[key] = { data, shape: [parts.length * parts[0]!.shape[0]!, ...parts[0]!.shape.slice(1)] }; // [3D, D] or [3D]
  }
  return out;
}

function toHf(sd: StateDict): StateDict {
  const out: StateDict = {};
  for (const [k, t] of Object.entries(sd)) {
    if (k === 'visual.proj') { out['visual_projection.weight'] = transposed(t); continue; }
    if (k === 'text_projection') { out['text_projection.weight'] = transposed(t); continue; }
    const tower = TOWERS.find(([, oa]) => k.startsWith(oa));
    if (tower) {
      const [i, ...rest] = k.slice(tower[1].length).split('.');
      const part = rest.join('.');
      const m = /^attn\.in_proj_(weight|bias)$/.exec(part);
      if (m) {
        const d = t.shape[0]! / 3;
        const per = t.data.length / 3;
        'qkv'.split('').forEach((name, j) => {
          out[`${tower[0]}${i}.self_attn.${name}_proj.${m[1]}`] = { data: t.data.slice(j * per, (j + 1) * per), shape: [d, ...t.shape.slice(1)] };
        });
        continue;
      }
      out[`${tower[0]}${i}.${rename(part, LAYER_PARTS, 1)!}`] = t;
      continue;
    }
    out[rename(k, HF_NAMES, 1)!] = t;
  }
  return out;
}

/** `special`: the tokenizer's start/end ids when known (a tokenizer smaller than the vocabulary does not end it). */
function hfConfig(c: ClipConfig, special?: { startId: number; endId: number }): Record<string, unknown> {
  return {
    architectures: ['CLIPModel'], model_type: 'clip', projection_dim: c.embedDim,
    text_config: {
      hidden_size: c.text.width, intermediate_size: c.text.mlpWidth, num_attention_heads: c.text.heads, num_hidden_layers: c.text.layers,
      max_position_embeddings: c.contextLength, vocab_size: c.vocabSize, hidden_act: c.act, layer_norm_eps: c.eps,
      // CLIP's <|startoftext|> and <|endoftext|> are the last two ids of its vocabulary
      // (HF pools the text at the first eos_token_id unless it is the legacy 2, then at the largest id)
      bos_token_id: special?.startId ?? c.vocabSize - 2, eos_token_id: special?.endId ?? c.vocabSize - 1,
    },
    vision_config: {
      hidden_size: c.vision.width, intermediate_size: c.vision.mlpWidth, num_attention_heads: c.vision.heads, num_hidden_layers: c.vision.layers,
      image_size: c.imageSize, patch_size: c.patchSize, hidden_act: c.act, layer_norm_eps: c.eps, num_channels: 3,
    },
  };
}

/**
 * Writes a CLIP: 'openai' as one bare state dict at `out` (.safetensors, or a torch.load-able
 * .pt/.pth/.bin), 'hf' as a directory `out` with config.json + model.safetensors. With a
 * `tokenizer`, its files go beside the weights as each layout's loaders look for them
 * (bpe_simple_vocab_16e6.txt.gz; vocab.json + merges.txt). Each file is written atomically.
 * Returns `out`; `written`, when given, receives every file written.
 */
export function writeClip(model: ClipModel, layout: ClipLayout, out: string, tokenizer?: ClipTokenizer, written: string[] = []): string {
  const sd = model.stateDict();
  const files = tokenizer?.files();
  if (layout === 'openai') {
    makeDir(dirname(out));
    if (['.pt', '.pth', '.bin'].includes(extname(out).toLowerCase())) {
      writeFileAtomic(out, serializeTorchFile(Object.entries(sd).map(([k, t]) => [k, { dtype: 'F32', shape: [...t.shape], bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) }])));
    } else writeSafetensors(out, sd);
    written.push(out);
    if (files) {
      const bpe = join(dirname(out), 'bpe_simple_vocab_16e6.txt.gz');
      writeFileAtomic(bpe, gzipSync(files.merges));
      written.push(bpe);
    }
    return out;
  }
  makeDir(out);
  writeSafetensors(join(out, 'model.safetensors'), toHf(sd), { format: 'pt' });
  writeFileAtomic(join(out, 'config.json'), `${JSON.stringify(hfConfig(model.config, tokenizer), null, 1)}\n`);
  written.push(join(out, 'config.json'), join(out, 'model.safetensors'));
  if (files) {
    writeFileAtomic(join(out, 'vocab.json'), files.vocabJson);
    writeFileAtomic(join(out, 'merges.txt'), files.merges);
    written.push(join(out, 'vocab.json'), join(out, 'merges.txt'));
  }
  return out;
}
