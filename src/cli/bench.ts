/** `tessera bench`: model throughput against PyTorch eager and ORT-on-PyTorch-export, in one run. */
import { Option, type Command } from 'commander';
import { benchModel, formatModelBench, trainWorker } from '../bench/model_bench.js';
import { getModelEntry } from '../models/registry.js';
import { sharedOption } from './common_options.js';
import { positiveInt } from './parse.js';

interface BenchFlags { model: string; batchSize: number; repeats: number; threads?: number; peers: boolean; json?: boolean; worker?: string }

export function registerBenchCommand(program: Command): void {
  program.command('bench')
    .description('measure inference and training throughput of a model, side by side with PyTorch eager and ORT running a PyTorch ONNX export')
    .addOption(sharedOption('model', { description: 'registered architecture', default: 'vit_tiny_patch16_224' }))
    .addOption(sharedOption('batchSize', { default: 32 }))
    .option('--repeats <n>', 'timed runs per measurement (median reported)', positiveInt('--repeats'), 10)
    .addOption(sharedOption('threads', { description: 'threads for every engine (default: physical cores)' }))
    .option('--no-peers', 'skip the PyTorch and ORT-export peers')
    .addOption(sharedOption('json', { description: 'print the result as JSON' }))
    .addOption(new Option('--worker <kind>', 'internal: run one measurement in this process').hideHelp())
    .action(async (o: BenchFlags) => {
      getModelEntry(o.model);
      if (o.worker === 'train') {
        console.log(JSON.stringify(await trainWorker(o.model, o.batchSize, o.repeats, o.threads!)));
        return;
      }
      const result = await benchModel({ model: o.model, batchSize: o.batchSize, repeats: o.repeats, threads: o.threads, peers: o.peers },
        o.json ? undefined : (msg) => process.stderr.write(`… ${msg}\n`));
      console.log(o.json ? JSON.stringify(result, null, 2) : formatModelBench(result));
    });
}
