/**
 * `--model-kwargs` for the commands that load a trained model (eval, predict, explain, attack,
 * export, serve): options of the architecture that change no weight, such as token merging's
 * `tome_r=8` on a checkpoint trained without it. The model is rebuilt with the overrides and the
 * checkpoint's tensors copied in; the overrides then travel in the config (an export's metadata).
 */
import { z } from 'zod';
import type { CheckpointMeta } from '../checkpoint/checkpoint.js';
import { getFamily, type ImageModel } from './model.js';
import { createFromConfig } from './registry.js';

const camel = (k: string) => k.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A --model-kwargs value that cannot apply to the model (a usage error). */
export class ModelKwargsError extends Error {}

export const modelKwargsSchema = z.record(z.string(), z.unknown())
  .describe('architecture options of a trained model that change no weight, as key=value pairs, e.g. tome_r=8 (token merging, ViT/DeiT); checkpoints only');

/** The model with `kwargs` (snake_case keys) applied, and its meta with the new config; unchanged without kwargs. */
export function withModelKwargs(model: ImageModel, meta: CheckpointMeta, kwargs: Record<string, unknown> | undefined): { model: ImageModel; meta: CheckpointMeta } {
  if (!kwargs || !Object.keys(kwargs).length) return { model, meta };
  const family = getFamily(model.family);
  const given = Object.fromEntries(Object.entries(kwargs).map(([k, v]) => [camel(k), v]));
  const r = family.kwargsSchema.safeParse(given);
  if (!r.success) {
    const first = r.error.issues[0]!;
    const what = first.code === 'unrecognized_keys' ? `unknown key ${first.keys.map(snake).join(', ')}` : `${snake(String(first.path[0] ?? ''))}: ${first.message}`;
    throw new ModelKwargsError(`--model-kwargs ${what}; known keys of ${model.family}: ${Object.keys(family.kwargsSchema.shape).map(snake).join(', ')}`);
  }
  const config = { ...(model.config as Record<string, unknown>), ...(r.data as Record<string, unknown>) };
  let rebuilt: ImageModel;
  try {
    rebuilt = createFromConfig(model.family, config);
  } catch (e) {
    throw new ModelKwargsError(`--model-kwargs: ${(e as Error).message}`);
  }
  const source = new Map(model.namedState());
  for (const [key, t] of rebuilt.namedState()) {
    const from = source.get(key);
    if (!from || from.data.length !== t.data.length) {
      throw new ModelKwargsError(`--model-kwargs ${Object.keys(kwargs).join(', ')} change the model's weights (${key}); only options that keep every tensor apply to a trained model`);
    }
    t.data.set(from.data);
    source.delete(key);
  }
  const left = [...source.keys()];
  if (left.length) throw new ModelKwargsError(`--model-kwargs ${Object.keys(kwargs).join(', ')} change the model's weights (${left[0]} would be dropped); only options that keep every tensor apply to a trained model`);
  return { model: rebuilt, meta: { ...meta, config: { ...rebuilt.config } } };
}
