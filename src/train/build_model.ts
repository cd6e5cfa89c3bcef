/**
 * The model a training run starts from: the registered architecture with --model-kwargs, or one
 * initialised from --pretrained weights (same family, fitted to the data's channels, size and
 * classes). Built and checked before a run directory is written, so a bad combination leaves
 * nothing behind.
 */
import { createFromConfig, createModel, familyOf, getModelEntry, listModels } from '../models/registry.js';
import { getFamily, type ImageModel } from '../models/model.js';
import type { TrainConfig } from './config.js';
import { applyPretrained, loadPretrainedWeights } from './finetune.js';
import { clipStart, isClipWithText } from './clip_start.js';

export async function buildModel(cfg: TrainConfig, numClasses: number, [c, h]: readonly [number, number, number], log: (m: string) => void, classNames: readonly string[] = []): Promise<{ model: ImageModel; modelName: string }> {
  if (cfg.pretrained && isClipWithText(cfg.pretrained)) return { model: await clipStart(cfg.pretrained, cfg.model, classNames.slice(0, numClasses), log), modelName: cfg.model };
  const common = { ...cfg.modelKwargs, numClasses, dropPathRate: cfg.dropPath, dropRate: cfg.drop, seed: cfg.seed };
  if (!cfg.pretrained) {
    return { model: checkKwargs(cfg, cfg.model, createModel(cfg.model, cfg.imgSize ? { ...common, imgSize: h } : common)), modelName: cfg.model };
  }
  const weights = await loadPretrainedWeights(cfg.pretrained);
  const entry = getModelEntry(cfg.model);
  const source = weights.meta ? weights.meta.family ?? familyOf(weights.meta.model) : entry.family;
  // pretraining weights (an MAE run) fine-tune as their encoder: --model's family and head, their encoder's sizes
  const encoder = getFamily(source).encoder;
  const asEncoder = encoder?.family === entry.family && weights.meta?.config !== undefined;
  const family = asEncoder ? entry.family : source;
  const base = asEncoder ? { ...getFamily(entry.family).defaults, ...entry.config, ...encoder!.config(weights.meta!.config!) }
    : weights.meta?.config ?? { ...getFamily(entry.family).defaults, ...entry.config };
  const model = checkKwargs(cfg, cfg.model, createFromConfig(family, { ...base, ...common, inChans: c, imgSize: h }));
  applyPretrained(model, asEncoder && encoder!.state ? { ...weights, state: encoder!.state(weights.state) } : weights, log);
  log(`initialised from ${cfg.pretrained}`);
  // an encoder taken out of pretraining weights is a --model (its pretraining model's name may not even be registered: an official DINO file)
  const named = weights.meta?.model;
  return { model, modelName: asEncoder || !named || !listModels().some((e) => e.name === named) ? cfg.model : named };
}

/** Kwargs that validate alone but do not fit the model (stem keys without a conv stem…) are an error, not ignored. */
function checkKwargs(cfg: TrainConfig, name: string, model: ImageModel): ImageModel {
  const problem = cfg.modelKwargs && getFamily(model.family).checkKwargs?.(cfg.modelKwargs, model, name);
  if (problem) throw new RangeError(`--model-kwargs ${problem}`);
  return model;
}

