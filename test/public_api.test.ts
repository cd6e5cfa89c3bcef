/** The package's entry point exposes every area of the toolkit, as a user imports it. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tessera from '../src/index.js';
import * as engine from '../src/engine.js';

const ROOT = join(import.meta.dirname, '..');

/** The bare (package) specifiers that `entry` reaches through its relative imports. */
function packagesReachedFrom(entry: string): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'([^']+)'/g)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) stack.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return packages;
}

describe('public API', () => {
  it('has a namespace per area with its main entry points', () => {
    const expected: Record<string, string[]> = {
      nn: ['Module', 'Linear', 'LayerNorm', 'Attention', 'Block', 'PatchEmbed'],
      models: ['VisionTransformer', 'createModel', 'listModels', 'resamplePosEmbed', 'countFlops'],
      data: ['loadBuiltinDataset', 'openImageDataset', 'createImageLoader', 'TensorLoader', 'loadImageForModel', 'applyMixup'],
      checkpoint: ['loadCheckpoint', 'saveCheckpoint', 'loadPretrained', 'convertCheckpoint'],
      training: ['train', 'evaluate', 'resolveTrainConfig', 'AdamW', 'SGD', 'makeSchedule', 'AdversarialTrainer'],
      pretrain: ['run', 'MaskedAutoencoderViT', 'maskFromNoise', 'MaeObjective', 'knnEvaluate', 'DinoViT', 'DinoObjective', 'dinoLoss', 'dinoViews'],
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

  it("'tessera/engine' is the engine alone: the same functions, without the toolkit's heavy modules", () => {
    for (const name of ['compile', 'compileTraced', 'trace', 'grad', 'emitModel', 'dumpModel', 'Graph', 'Tensor', 'Random'] as const) {
      expect(engine[name], name).toBe(tessera[name]);
    }
    expect(engine.ops.matmul).toBe(tessera.ops.matmul);
    expect('models' in engine || 'serve' in engine).toBe(false);
    const reached = packagesReachedFrom(join(ROOT, 'src', 'engine.ts'));
    expect(reached).toContain('onnxruntime-node'); // the walk does follow the runtime
    for (const heavy of ['sharp', 'fastify', '@fastify/static', 'vega', 'vega-lite', 'onnxruntime-web', 'commander']) expect(reached, heavy).not.toContain(heavy);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
    expect(pkg.exports['./engine']!.default).toBe('./dist/src/engine.js');
    expect(pkg.exports['.']!.default).toBe('./dist/src/index.js');
  });
});
