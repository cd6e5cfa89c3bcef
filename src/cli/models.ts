/** `tessera models [--json]`: registered architectures with parameters, GFLOPs and input size. */
import type { Command } from 'commander';
import { Graph } from '../ir/graph.js';
import { BATCH } from '../ir/shape.js';
import { countFlops } from '../ir/flops.js';
import { createModel, listModels } from '../models/registry.js';
import { sharedOption } from './common_options.js';
import { printTable } from './output.js';

export interface ModelInfo {
  name: string;
  family: string;
  params: number;
  gflops: number;
  inputSize: [number, number, number];
  numClasses: number;
  description?: string;
}

/** Parameters are counted from the built model and FLOPs from its traced forward graph (batch 1). */
export function describeModel(name: string): ModelInfo {
  const entry = listModels().find((e) => e.name === name)!;
  const model = createModel(name);
  const g = new Graph();
  const x = g.input('x', [BATCH, ...model.inputShape]);
  const { logits } = model.forward(x);
  return {
    name,
    family: entry.family,
    params: model.numParams(),
    gflops: countFlops(g, [logits]) / 1e9,
    inputSize: model.inputShape,
    numClasses: model.numClasses,
    description: entry.description,
  };
}

export function registerModelsCommand(program: Command): void {
  program.command('models')
    .description('list the registered architectures with parameter count, GFLOPs per image and input size')
    .addOption(sharedOption('json', { description: 'print JSON instead of a table' }))
    .action((opts: { json?: boolean }) => {
      const infos = listModels().map((e) => describeModel(e.name));
      if (opts.json) {
        console.log(JSON.stringify(infos, null, 2));
        return;
      }
      printTable(['model', 'params (M)', 'GFLOPs', 'input', 'classes', 'notes'], infos.map((m) => [
        m.name, (m.params / 1e6).toFixed(2), m.gflops.toFixed(2), m.inputSize.join('×'), String(m.numClasses), m.description ?? '',
      ]));
    });
}
