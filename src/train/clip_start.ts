/**
 * `train --pretrained <CLIP checkpoint>`: the image tower with a zero-shot head for the run's class
 * names ("a photo of a {}."; rows logit_scale · normalised text embedding, bias 0), the start
 * WiSE-FT (Wortsman et al. 2022, https://arxiv.org/abs/2109.01903) and FLYP (Goyal et al. 2023,
 * https://arxiv.org/abs/2212.00638) fine-tune from. The text tower is used once, here, and not kept.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadClip } from '../checkpoint/layout_clip.js';
import { readTensorFile } from '../checkpoint/layout_common.js';
import type { ClipImageClassifier } from '../models/clip.js';
import { DEFAULT_TEMPLATE, zeroShotClassifier } from '../models/clip_zero_shot.js';
import { getModelEntry } from '../models/registry.js';
import { ClipTokenizer } from '../text/clip_tokenizer.js';

/** A whole CLIP (text tower included) in OpenAI's or Hugging Face's layout, as opposed to a trained image tower. */
export function isClipWithText(path: string): boolean {
  if (!existsSync(path)) return false;
  if (statSync(path).isDirectory()) {
    const config = join(path, 'config.json');
    return existsSync(config) && (JSON.parse(readFileSync(config, 'utf8')) as { model_type?: string }).model_type === 'clip';
  }
  try {
    const keys = [...readTensorFile(path).tensors.keys()];
    return keys.includes('visual.proj') && keys.includes('token_embedding.weight');
  } catch {
    return false; // not a tensor file: the ordinary loader reports it
  }
}

export async function clipStart(path: string, modelName: string, classNames: readonly string[], log: (m: string) => void): Promise<ClipImageClassifier> {
  if (getModelEntry(modelName).family !== 'clip') {
    throw new RangeError(`--pretrained ${path} is a CLIP checkpoint: give --model a CLIP image tower (e.g. clip_ViT_B_32, clip_tiny), whose preprocessing it was trained with`);
  }
  const { model: clip, checkpoint } = loadClip(path);
  const model = await zeroShotClassifier(clip, ClipTokenizer.find(checkpoint.folder), classNames, [DEFAULT_TEMPLATE]);
  log(`initialised from ${path}: CLIP image tower, head from the text embeddings of "${DEFAULT_TEMPLATE}" for ${classNames.length} classes (logit scale ${clip.logitScale.toFixed(2)})`);
  return model;
}
