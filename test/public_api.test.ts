/** The package's entry point exposes every area of the toolkit, as a user imports it. */
import { describe, expect, it } from 'vitest';
import * as tessera from '../src/index.js';

describe('public API', () => {
  it('has a namespace per area with its main entry points', () => {
    const expected: Record<string, string[]> = {
      nn: ['Module', 'Linear', 'LayerNorm', 'Attention', 'Block', 'PatchEmbed'],
      models: ['VisionTransformer', 'createModel', 'listModels', 'resamplePosEmbed', 'countFlops'],
      data: ['loadBuiltinDataset', 'openImageDataset', 'createImageLoader', 'TensorLoader', 'loadImageForModel', 'applyMixup'],
      checkpoint: ['loadCheckpoint', 'saveCheckpoint', 'loadPretrained', 'convertCheckpoint'],
      training: ['train', 'evaluate', 'resolveTrainConfig', 'AdamW', 'SGD', 'makeSchedule', 'AdversarialTrainer'],
      explain: ['Explainer', 'attentionRollout'],
      robust: ['compileAttackModel', 'perturbBatch', 'evaluateRobustness', 'fgsm', 'pgd'],
      deploy: ['exportModel', 'quantizeExport', 'loadOnnxModel'],
      serve: ['createServer', 'startInferenceWorker', 'DynamicBatcher'],
    };
    for (const [area, names] of Object.entries(expected)) {
      const ns = (tessera as unknown as Record<string, Record<string, unknown>>)[area];
      expect(ns, area).toBeDefined();
      for (const n of names) expect(typeof ns![n], `${area}.${n}`).toBe('function');
    }
  });

  it('builds a registered model and reads its config through the namespaces', () => {
    const model = tessera.models.createModel('vit_tiny_patch4_28');
    expect(model).toBeInstanceOf(tessera.models.VisionTransformer);
    expect(model.inputShape).toEqual([1, 28, 28]);
    expect(tessera.training.resolveTrainConfig({}).model).toBe('vit_tiny_patch4_28');
  });
});
