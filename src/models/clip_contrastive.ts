/**
 * The whole CLIP (both towers) as a registered family, `clip_contrastive`: what `tessera pretrain
 * --method clip` builds and trains (src/train/objectives/clip.ts). The model is clip.ts's
 * ClipModel, so its parameter names are OpenAI's state-dict keys and a run's checkpoint loads
 * wherever a CLIP checkpoint does (zero-shot, train --pretrained, convert --to openai|hf).
 */
import { z } from 'zod';
import { CLIP_CONFIGS, CLIP_PARAMS, CLIP_PREPROCESSING, ClipModel, type ClipModelConfig } from './clip.js';
import { registerFamily } from './model.js';
import type { ModelEntry } from './registry.js';

const defaults: ClipModelConfig = { ...CLIP_CONFIGS['clip_tiny']!, imgSize: 32, inChans: 3, numClasses: 0, dropPathRate: 0, dropRate: 0, seed: 0 };

/** The keys that size the text side to a tokenizer and the image side to the data (--model-kwargs vocab_size=…, context_length=…). */
const kwargsSchema = z.object({
  vocabSize: z.number().int().min(3),
  contextLength: z.number().int().min(2),
  embedDim: z.number().int().positive(),
  patchSize: z.number().int().positive(),
}).partial().strict();

/** `clip_contrastive_<name>` for every CLIP config: the whole CLIP, parameters counted as the plain-PyTorch port's (CLIP_PARAMS). */
export const clipContrastiveEntries: ModelEntry[] = Object.entries(CLIP_CONFIGS).map(([name, clip]) => ({
  name: `clip_contrastive_${name.replace(/^clip_/, '').replace(/-/g, '_')}`,
  family: 'clip_contrastive',
  config: { ...clip, imgSize: clip.imageSize },
  pretrained: { inputSize: [3, clip.imageSize, clip.imageSize], mean: [...CLIP_PREPROCESSING.mean], std: [...CLIP_PREPROCESSING.std], interpolation: CLIP_PREPROCESSING.interpolation, cropPct: CLIP_PREPROCESSING.cropPct, numClasses: 0 },
  description: name === 'clip_tiny' ? 'whole CLIP, both towers, tiny (pretrain --method clip; tests)' : `whole CLIP ${name} (both towers) for pretrain --method clip`,
  params: CLIP_PARAMS[name]!.clip,
}));

registerFamily<ClipModelConfig>({
  name: 'clip_contrastive',
  defaults,
  kwargsSchema,
  create: (config) => new ClipModel({ ...defaults, ...config }),
  tinyArgs: { ...CLIP_CONFIGS['clip_tiny']!, vision: { width: 16, layers: 1, heads: 2, mlpWidth: 32 }, text: { width: 16, layers: 1, heads: 2, mlpWidth: 32 },
    embedDim: 8, imageSize: 16, imgSize: 16, patchSize: 4, contextLength: 8, vocabSize: 40 },
});
