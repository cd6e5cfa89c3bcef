/** The published recipes (recipes/*.yaml) load as `--config` files: every key valid, the model registered. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConfigFile, resolveTrainConfig } from '../../src/train/config.js';
import { createModel } from '../../src/models/registry.js';

const DIR = join(import.meta.dirname, '..', '..', 'recipes');

describe('recipes', () => {
  it('recipes/fashion-mnist.yaml is the hybrid recipe and validates', () => {
    const cfg = resolveTrainConfig(readConfigFile(join(DIR, 'fashion-mnist.yaml')), 'recipes/fashion-mnist.yaml');
    expect(cfg).toMatchObject({ model: 'vit_tiny_hybrid_patch4_28', dataset: 'fashion-mnist', epochs: 9 });
  });

  it.each(readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)))('%s names a registered model', (file) => {
    const cfg = resolveTrainConfig(readConfigFile(join(DIR, file)), file);
    expect(() => createModel(cfg.model)).not.toThrow();
  });
});
