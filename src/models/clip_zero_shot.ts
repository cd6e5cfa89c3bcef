/**
 * Zero-shot classification with a CLIP: each class's prompts ("a photo of a {}.") are encoded by
 * the text tower once, and the image tower with a head of logit_scale · (normalised mean of the
 * class's normalised prompt embeddings) — the prompt ensembling of OpenAI's ImageNet notebook —
 * is an ordinary ImageModel: zero-shot, eval, fine-tuning (WiSE-FT / FLYP's start) and export use
 * it as any classifier. The text side is encoded once per label set, when the classifier is made;
 * every image batch after that runs the image tower alone.
 */
import { compile } from '../runtime/compile.js';
import { ClipImageClassifier, normalisedRows, type ClipModel } from './clip.js';
import type { ClipTokenizer } from '../text/clip_tokenizer.js';

/** OpenAI's notebook's simplest prompt. */
export const DEFAULT_TEMPLATE = 'a photo of a {}.';
/** Prompts encoded per text-tower run. */
const TEXT_BATCH = 256;

export class ZeroShotError extends Error {
  override name = 'ZeroShotError';
}

/** The prompts of each label: every template with `{}` replaced by the label. */
export function promptsOf(labels: readonly string[], templates: readonly string[]): string[][] {
  for (const t of templates) if (!t.includes('{}')) throw new ZeroShotError(`template "${t}" has no {} for the label`);
  return labels.map((label) => templates.map((t) => t.split('{}').join(label)));
}

/** Labels as given (--labels a,b or a file's lines): none empty, none twice. */
export function checkLabels(labels: readonly string[], source: string): string[] {
  const seen = new Map<string, number>();
  labels.forEach((l, i) => {
    if (!l.trim()) throw new ZeroShotError(`${source}: label ${i + 1} is empty${source.startsWith('--') ? '' : '; give one label per line, without blank lines'}`);
    const first = seen.get(l.trim());
    if (first !== undefined) throw new ZeroShotError(`${source}: label "${l.trim()}" appears twice (labels ${first + 1} and ${i + 1})`);
    seen.set(l.trim(), i);
  });
  if (!labels.length) throw new ZeroShotError(`${source}: no labels`);
  return labels.map((l) => l.trim());
}

/** Normalised text embeddings [texts, E] of `texts`, encoded TEXT_BATCH at a time. */
export async function encodeTexts(clip: ClipModel, tokenizer: ClipTokenizer, texts: readonly string[], threads?: number): Promise<Float32Array> {
  const n = clip.config.contextLength;
  const e = clip.config.embedDim;
  if (tokenizer.vocabSize > clip.config.vocabSize) {
    throw new Error(`the tokenizer (${tokenizer.source}) has ${tokenizer.vocabSize} tokens but the checkpoint's text tower embeds ${clip.config.vocabSize}`);
  }
  const ids = tokenizer.tokenize(texts, { contextLength: n }); // every text checked before any runs
  const exe = await compile((t) => ({ text: clip.encodeText(t) }), [{ name: 't', shape: ['batch', n], dtype: 'int64' }], { threads });
  const out = new Float32Array(texts.length * e);
  try {
    for (let s = 0; s < texts.length; s += TEXT_BATCH) {
      const rows = Math.min(TEXT_BATCH, texts.length - s);
      const r = await exe.run({ t: { data: ids.subarray(s * n, (s + rows) * n), shape: [rows, n] } as never });
      out.set(r.text!.data as Float32Array, s * e);
    }
  } finally {
    await exe.dispose();
  }
  return normalisedRows(out, e);
}

/** Per label, the mean of its prompts' normalised embeddings (renormalised by setZeroShotHead). */
export async function classEmbeddings(clip: ClipModel, tokenizer: ClipTokenizer, labels: readonly string[], templates: readonly string[], threads?: number): Promise<Float32Array> {
  const prompts = promptsOf(labels, templates);
  const e = clip.config.embedDim;
  const k = templates.length;
  const each = await encodeTexts(clip, tokenizer, prompts.flat(), threads); // [labels · templates, E]
  const out = new Float32Array(labels.length * e);
  for (let c = 0; c < labels.length; c++) {
    for (let t = 0; t < k; t++) for (let j = 0; j < e; j++) out[c * e + j]! += each[(c * k + t) * e + j]! / k;
  }
  return out;
}

/** The image tower with the zero-shot head of `labels`: its logits are CLIP's logits per image. */
export async function zeroShotClassifier(clip: ClipModel, tokenizer: ClipTokenizer, labels: readonly string[], templates: readonly string[], threads?: number): Promise<ClipImageClassifier> {
  const model = new ClipImageClassifier({ clip: clip.config, numClasses: labels.length });
  model.loadStateDict(Object.fromEntries(Object.entries(clip.stateDict()).filter(([k]) => k.startsWith('visual.'))), false);
  model.setZeroShotHead(await classEmbeddings(clip, tokenizer, labels, templates, threads), clip.logitScale);
  return model;
}
