/**
 * Hugging Face `ViTModel` / `ViTForImageClassification` ↔ timm keys. HF splits the attention
 * input projection into query/key/value (timm's fused qkv rows are [q; k; v]), names the norms
 * layernorm_before/after and keeps its hyper-parameters in config.json — including
 * `layer_norm_eps`, 1e-12 by default where timm uses 1e-6 — and its preprocessing in
 * preprocessor_config.json.
 */
import type { VitConfig } from '../models/vit.js';
import type { StateDict, StateTensor } from '../nn/module.js';
import {
  LayoutError, checkAgainstModel, inferTimmConfig, renameKeys, toStateDict,
  type ForeignCheckpoint, type KeyRules, type LayoutHints, type Preprocessing, type RawTensors,
} from './layout_common.js';

const L = String.raw`encoder\.layer\.(\d+)`;
const FROM_HF: KeyRules = [
  [/^embeddings\.cls_token$/, 'cls_token'],
  [/^embeddings\.position_embeddings$/, 'pos_embed'],
  [/^embeddings\.patch_embeddings\.projection\.(weight|bias)$/, 'patch_embed.proj.$1'],
  [new RegExp(`^${L}\\.layernorm_before\\.(weight|bias)$`), 'blocks.$1.norm1.$2'],
  [/^(blocks\.\d+\.attn\.qkv\.(weight|bias))$/, '$1'], // fused below
  [new RegExp(`^${L}\\.attention\\.output\\.dense\\.(weight|bias)$`), 'blocks.$1.attn.proj.$2'],
  [new RegExp(`^${L}\\.layernorm_after\\.(weight|bias)$`), 'blocks.$1.norm2.$2'],
  [new RegExp(`^${L}\\.intermediate\\.dense\\.(weight|bias)$`), 'blocks.$1.mlp.fc1.$2'],
  [new RegExp(`^${L}\\.output\\.dense\\.(weight|bias)$`), 'blocks.$1.mlp.fc2.$2'],
  [/^layernorm\.(weight|bias)$/, 'norm.$1'],
  [/^classifier\.(weight|bias)$/, 'head.$1'],
];
/** ViTModel's tanh pooler feeds no logits of ViTForImageClassification; the mask token is for masked-image pretraining. */
const HF_DROPPABLE = [/^pooler\.dense\.(weight|bias)$/, /^embeddings\.mask_token$/, /position_ids$/];
const QKV = new RegExp(`^${L}\\.attention\\.attention\\.(query|key|value)\\.(weight|bias)$`);

const concatRows = (parts: StateTensor[]): StateTensor => {
  const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let o = 0;
  for (const p of parts) { data.set(p.data, o); o += p.data.length; }
  return { data, shape: [parts.reduce((n, p) => n + p.shape[0]!, 0), ...parts[0]!.shape.slice(1)] };
};

const INTERP: Record<number, 'bilinear' | 'bicubic'> = { 2: 'bilinear', 3: 'bicubic' };

export function fromHf(raw: RawTensors, source: string, config: Record<string, any>, preprocessor: Record<string, any> | undefined, hints: LayoutHints): ForeignCheckpoint {
  if (config.model_type !== undefined && config.model_type !== 'vit') {
    throw new LayoutError(`${source}: Hugging Face model_type "${config.model_type}" is not supported, expected "vit"`);
  }
  if ((config.hidden_act ?? 'gelu') !== 'gelu') throw new LayoutError(`${source}: hidden_act "${config.hidden_act}" is not supported; tessera's ViT uses exact GELU ("gelu")`);
  const dropped: string[] = [];
  const flat = toStateDict(raw, source, HF_DROPPABLE, dropped);
  const sd: StateDict = {};
  for (const [k, t] of Object.entries(flat)) sd[k.startsWith('vit.') ? k.slice(4) : k] = t;
  // [q; k; v] rows, as timm's fused qkv
  const groups = new Map<string, Partial<Record<string, StateTensor>>>();
  for (const k of Object.keys(sd)) {
    const m = QKV.exec(k);
    if (!m) continue;
    const key = `blocks.${m[1]}.attn.qkv.${m[3]}`;
    groups.set(key, { ...groups.get(key), [m[2]!]: sd[k] });
    delete sd[k];
  }
  for (const [key, g] of groups) {
    if (!g.query || !g.key || !g.value) throw new LayoutError(`${source}: ${key} needs query, key and value; found ${Object.keys(g).join(', ')}`);
    sd[key] = concatRows([g.query, g.key, g.value]);
  }
  const timm = renameKeys(sd, FROM_HF, HF_DROPPABLE, dropped, `${source} (Hugging Face ViT)`);
  const heads = config.num_attention_heads ?? hints.numHeads;
  const vit = inferTimmConfig(timm, source, {
    numHeads: (dim) => heads ?? (dim % 64 === 0 ? dim / 64 : (() => { throw new LayoutError(`${source}: config.json lacks num_attention_heads`); })()),
    eps: config.layer_norm_eps ?? 1e-12,
  });
  checkAgainstModel(timm, vit, source);
  const labels = config.id2label as Record<string, string> | undefined;
  const classNames = labels && Object.keys(labels).length === vit.numClasses
    ? Array.from({ length: vit.numClasses }, (_, i) => labels[String(i)] ?? String(i)) : undefined;
  return {
    layout: 'hf', source, stateDict: timm, config: vit, dropped, classNames,
    modelName: typeof config._name_or_path === 'string' && config._name_or_path ? config._name_or_path : undefined,
    preprocessing: preprocessor ? hfPreprocessing(preprocessor, vit) : undefined,
  };
}

function hfPreprocessing(p: Record<string, any>, c: VitConfig): Partial<Preprocessing> {
  const size = p.size;
  const h = typeof size === 'number' ? size : size?.height ?? size?.shortest_edge;
  const w = typeof size === 'number' ? size : size?.width ?? size?.shortest_edge;
  const crop = p.do_center_crop && p.crop_size ? (p.crop_size.height ?? p.crop_size) : undefined;
  const out: Partial<Preprocessing> = {
    mean: p.image_mean, std: p.image_std,
    interpolation: INTERP[p.resample as number] ?? 'bilinear',
    // ViTImageProcessor resizes straight to the input size (no crop)
    cropPct: typeof p.crop_pct === 'number' ? p.crop_pct : crop && h ? crop / h : 1,
  };
  const side = crop ?? h;
  if (typeof side === 'number') out.inputSize = [c.inChans, side, crop ?? w ?? side];
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

/** HF can hold token pooling over a class token with the position embedding covering it. */
export function checkHfCompatible(c: VitConfig): void {
  const bad = [
    !c.classToken && 'no class token', c.globalPool !== 'token' && `${c.globalPool} pooling`,
    c.distilled && 'a distillation token', c.noEmbedClass && 'no_embed_class position embeddings',
  ].filter(Boolean);
  if (bad.length) throw new LayoutError(`Hugging Face ViT cannot hold a model with ${bad.join(', ')}`);
}

/** timm keys → HF keys (`vit.` prefixed with a classifier, bare for a headless ViTModel). */
export function toHf(sd: StateDict, c: VitConfig): StateDict {
  checkHfCompatible(c);
  const prefix = c.numClasses > 0 ? 'vit.' : '';
  const out: StateDict = {};
  const d = c.embedDim;
  const rowSlice = (t: StateTensor, i: number): StateTensor => ({ data: t.data.slice(i * d * (t.data.length / t.shape[0]!), (i + 1) * d * (t.data.length / t.shape[0]!)), shape: [d, ...t.shape.slice(1)] });
  const rules: KeyRules = [
    [/^cls_token$/, 'embeddings.cls_token'],
    [/^pos_embed$/, 'embeddings.position_embeddings'],
    [/^patch_embed\.proj\.(weight|bias)$/, 'embeddings.patch_embeddings.projection.$1'],
    [/^blocks\.(\d+)\.norm1\.(weight|bias)$/, 'encoder.layer.$1.layernorm_before.$2'],
    [/^blocks\.(\d+)\.attn\.proj\.(weight|bias)$/, 'encoder.layer.$1.attention.output.dense.$2'],
    [/^blocks\.(\d+)\.norm2\.(weight|bias)$/, 'encoder.layer.$1.layernorm_after.$2'],
    [/^blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$/, 'encoder.layer.$1.intermediate.dense.$2'],
    [/^blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$/, 'encoder.layer.$1.output.dense.$2'],
    [/^norm\.(weight|bias)$/, 'layernorm.$1'],
  ];
  for (const [k, t] of Object.entries(sd)) {
    const qkv = /^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$/.exec(k);
    if (qkv) {
      ['query', 'key', 'value'].forEach((part, i) => { out[`${prefix}encoder.layer.${qkv[1]}.attention.attention.${part}.${qkv[2]}`] = rowSlice(t, i); });
      continue;
    }
    const head = /^head\.(weight|bias)$/.exec(k);
    if (head) { out[`classifier.${head[1]}`] = t; continue; }
    const rule = rules.find(([re]) => re.test(k));
    if (!rule) throw new LayoutError(`${k} has no Hugging Face ViT counterpart`);
    out[prefix + k.replace(rule[0], rule[1])] = t;
  }
  return out;
}

const PIL_RESAMPLE = { bilinear: 2, bicubic: 3 } as const;

export function hfConfigJson(c: VitConfig, classNames?: string[]): Record<string, unknown> {
  checkHfCompatible(c);
  const names = classNames ?? Array.from({ length: c.numClasses }, (_, i) => `LABEL_${i}`);
  return {
    architectures: [c.numClasses > 0 ? 'ViTForImageClassification' : 'ViTModel'],
    model_type: 'vit',
    hidden_size: c.embedDim, num_hidden_layers: c.depth, num_attention_heads: c.numHeads,
    intermediate_size: Math.round(c.embedDim * c.mlpRatio), hidden_act: 'gelu',
    hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, initializer_range: 0.02,
    layer_norm_eps: c.eps, image_size: c.imgSize, patch_size: c.patchSize, num_channels: c.inChans,
    qkv_bias: c.qkvBias, encoder_stride: c.patchSize, torch_dtype: 'float32',
    ...(c.numClasses > 0 ? {
      id2label: Object.fromEntries(names.map((n, i) => [String(i), n])),
      label2id: Object.fromEntries(names.map((n, i) => [n, i])),
    } : {}),
  };
}

export function hfPreprocessorJson(c: VitConfig, p: Partial<Preprocessing>): Record<string, unknown> {
  const [, h, w] = p.inputSize ?? [c.inChans, c.imgSize, c.imgSize];
  return {
    image_processor_type: 'ViTImageProcessor',
    do_resize: true, size: { height: h, width: w }, resample: PIL_RESAMPLE[p.interpolation ?? 'bilinear'],
    do_rescale: true, rescale_factor: 1 / 255, do_normalize: true,
    image_mean: p.mean ?? Array(c.inChans).fill(0.5), image_std: p.std ?? Array(c.inChans).fill(0.5),
    // not a ViTImageProcessor setting (it resizes without a crop); kept so the round trip preserves it
    ...(p.cropPct !== undefined && p.cropPct !== 1 ? { crop_pct: p.cropPct } : {}),
  };
}
