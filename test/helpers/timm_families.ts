/**
 * One small model per family timm can train, with perturbed weights and BatchNorm statistics, for
 * the torchrun round trip: scripts/make_timm_job_fixture.py writes these checkpoints (through tsx)
 * and loads their timm conversions into timm; test/train/timm_families.test.ts rebuilds the same
 * ones. Perturbed so that no weight keeps its init (zero-init last BN gammas, unit variances).
 */
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import type { ImageModel } from '../../src/models/model.js';
import { createModel, type ModelArgs } from '../../src/models/registry.js';

export interface FamilyCase {
  family: string;
  model: string;
  overrides: ModelArgs;
  /** The timm name tessera's torchrun must write. */
  timm: string;
}

export const FAMILY_CASES: FamilyCase[] = [
  { family: 'swin', model: 'swin_nano_patch2_window7_28', overrides: {}, timm: 'swin_tiny_patch4_window7_224' },
  { family: 'convit', model: 'convit_tiny_patch4_28', overrides: {}, timm: 'convit_tiny' },
  { family: 'mobilevit', model: 'mobilevit_xxs', overrides: { imgSize: 64, inChans: 1, numClasses: 10 }, timm: 'mobilevit_xxs' },
  { family: 'mobilevit', model: 'mobilevitv2_050', overrides: { imgSize: 64, inChans: 1, numClasses: 10 }, timm: 'mobilevitv2_050' },
  {
    family: 'vit', model: 'deit_tiny_distilled_patch16_224', timm: 'deit_base_distilled_patch16_224',
    overrides: { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 48, depth: 2, numHeads: 3 },
  },
];

/** The case's model with every parameter and buffer moved off its init by a seeded sine. */
export function perturbedModel(c: FamilyCase): ImageModel {
  const model = createModel(c.model, { ...c.overrides, seed: 11 });
  let h = 0;
  for (const [k, t] of model.namedState()) {
    h = (h + 1) % 997;
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      const s = Math.sin(0.37 * i + 0.61 * h);
      if (k.endsWith('running_var')) d[i] = 0.5 + 0.5 * Math.abs(s);
      else if (k.endsWith('num_batches_tracked')) d[i] = 7;
      else d[i] = d[i]! + 0.02 * s;
    }
  }
  return model;
}

/** Writes the case's perturbed checkpoint (tessera format) at `path`. */
export function writeFamilyCheckpoint(c: FamilyCase, path: string): ImageModel {
  const model = perturbedModel(c);
  const chans = model.config.inChans;
  saveCheckpoint(path, model, metaFor(c.model, model, Array.from({ length: model.numClasses }, (_, i) => `c${i}`), { mean: Array(chans).fill(0.5), std: Array(chans).fill(0.25) }));
  return model;
}
