/**
 * Hugging Face's CvT checkpoints (`CvtForImageClassification`, config.json, preprocessor_config.json)
 * → the CvT family. The key layout itself (detection, config inference, config.json mapping) is
 * the family's, in src/models/cvt.ts.
 */
import type { VitConfig } from '../models/vit.js';
import { cvtConfigFromHf, cvtDefaults, inferCvtConfig } from '../models/cvt.js';
import { createFromConfig, getModelEntry, listModels } from '../models/registry.js';
import {
  LayoutError, matchingEntry, toStateDict,
  type ForeignCheckpoint, type LayoutHints, type Preprocessing, type RawTensors,
} from './layout_common.js';

/**
 * Hugging Face's CvtForImageClassification: its keys are the CvT family's own, so nothing is
 * renamed. The architecture is config.json's
 * (CvtConfig), else read from the shapes; num_batches_tracked (int64 in PyTorch) is read as its
 * value. The model is built through the family and loads strictly: wrong shapes and missing or
 * unexpected keys fail with the list.
 */
export function fromHfCvt(raw: RawTensors, source: string, hfConfig: Record<string, any> | undefined, preprocessor: Record<string, any> | undefined, hints: LayoutHints): ForeignCheckpoint {
  const sd = toStateDict(raw, source, [], []);
  let fromJson: Record<string, unknown> = {};
  try {
    fromJson = hfConfig ? cvtConfigFromHf(hfConfig) : {};
  } catch (e) {
    throw new LayoutError(`${source}: config.json: ${(e as Error).message}`);
  }
  const registered = hints.model && listModels().some((e) => e.name === hints.model && e.family === 'cvt') ? getModelEntry(hints.model).config : {};
  const head = sd['classifier.weight'];
  const p = preprocessor ?? {};
  const size = p.crop_size?.height ?? p.size?.height ?? p.size?.shortest_edge ?? (typeof p.size === 'number' ? p.size : undefined);
  const config = {
    ...cvtDefaults, ...inferCvtConfig(sd), ...registered, ...fromJson, numClasses: head ? head.shape[0]! : 0, ...(typeof size === 'number' ? { imgSize: size } : {}),
  };
  let model;
  try {
    model = createFromConfig('cvt', config);
    model.loadStateDict(sd, true);
  } catch (e) {
    const hint = hfConfig ? '' : ' (heads, strides and paddings are not in the weights: without config.json they are the registered CvT\'s of the same widths and depths, else cvt-13\'s)';
    throw new LayoutError(`${source}: not a Hugging Face CvT tessera can build: ${(e as Error).message}${hint}`);
  }
  const labels = hfConfig?.id2label as Record<string, string> | undefined;
  const classNames = labels && Object.keys(labels).length === model.numClasses ? Array.from({ length: model.numClasses }, (_, i) => labels[String(i)] ?? String(i)) : undefined;
  const interpolation = ({ 2: 'bilinear', 3: 'bicubic' } as Record<number, Preprocessing['interpolation']>)[p.resample as number];
  const preprocessing: Partial<Preprocessing> = {
    mean: p.image_mean, std: p.image_std, interpolation, cropPct: typeof p.crop_pct === 'number' ? p.crop_pct : undefined,
    inputSize: typeof size === 'number' ? [config.inChans, size, size] : undefined,
  };
  const fc: ForeignCheckpoint = {
    layout: 'hf', source, stateDict: model.stateDict(), family: 'cvt', config: model.config as unknown as VitConfig, dropped: [],
    modelName: hints.model, classNames,
    preprocessing: Object.fromEntries(Object.entries(preprocessing).filter(([, v]) => v !== undefined)),
  };
  // a registered CvT with the same architecture (cvt_13…), else a name that says the widths and depths
  fc.modelName ??= matchingEntry(fc) ?? `cvt_${config.embedDim.join('-')}_depth${config.depth.join('-')}`;
  return fc;
}
