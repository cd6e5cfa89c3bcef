/** `tessera bench`: model throughput against PyTorch (1.13 eager; 2.x eager, compiled, bf16) and ORT-on-PyTorch-export, in one run, each at its best thread count. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { benchModel, ENGINE_IDS, formatModelBench, trainWorker, type EngineId } from '../bench/model_bench.js';
import { getModelEntry } from '../models/registry.js';
import { sharedOption } from './common_options.js';
import { positiveInt } from './parse.js';

interface BenchFlags { model: string; batchSize: number; repeats: number; threads?: number; threadCounts?: number[]; engines?: EngineId[]; peers: boolean; json?: boolean; worker?: string }

const threadList = (v: string): number[] => {
  const ns = v.split(',').map((s) => Number(s.trim()));
  if (!ns.length || ns.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError(`--thread-counts must be positive integers separated by commas, got "${v}"`);
  return ns;
};

const engineList = (v: string): EngineId[] => {
  const ids = v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = ids.filter((id) => !(ENGINE_IDS as readonly string[]).includes(id));
  if (bad.length) throw new InvalidArgumentError(`--engines: unknown ${bad.join(', ')}; choose from ${ENGINE_IDS.join(', ')}`);
  return ids as EngineId[];
};

export function registerBenchCommand(program: Command): void {
  program.command('bench')
    .description('measure inference and training throughput of a model, side by side with PyTorch 1.13 eager, PyTorch 2.x eager / torch.compile / bf16 autocast (TESSERA_TORCH2_PATH, default /opt/torch2) and ORT running a PyTorch ONNX export, every engine at its best thread count')
    .addOption(sharedOption('model', { description: 'registered architecture', default: 'vit_tiny_patch16_224' }))
    .addOption(sharedOption('batchSize', { default: 32 }))
    .option('--repeats <n>', 'timed runs per measurement (median reported)', positiveInt('--repeats'), 10)
    .addOption(sharedOption('threads', { description: 'one thread count for every engine (default: try each from 1 to the physical cores, report the best)' }))
    .option('--thread-counts <list>', 'thread counts to try for every engine, comma-separated (default 1 … physical cores)', threadList)
    .option('--engines <list>', `peers to run, comma-separated, from ${ENGINE_IDS.filter((id) => id !== 'tessera').join(', ')} (default all; tessera always runs)`, engineList)
    .option('--no-peers', 'skip every peer (tessera alone)')
    .addOption(sharedOption('json', { description: 'print the result as JSON' }))
    .addOption(new Option('--worker <kind>', 'internal: run one measurement in this process').hideHelp())
    .action(async (o: BenchFlags) => {
      getModelEntry(o.model);
      if (o.worker === 'train') {
        console.log(JSON.stringify(await trainWorker(o.model, o.batchSize, o.repeats, o.threads!)));
        return;
      }
      const result = await benchModel({ model: o.model, batchSize: o.batchSize, repeats: o.repeats, threads: o.threads, threadCounts: o.threadCounts, engines: o.engines, peers: o.peers },
        o.json ? undefined : (msg) => process.stderr.write(`… ${msg}\n`));
      console.log(o.json ? JSON.stringify(result, null, 2) : formatModelBench(result));
    });
}
