/**
 * `npm run bench [-- NAME…]`: runs the named benchmarks (default: all) and prints Markdown tables.
 *
 * Environment: BENCH_REPEATS (timed runs per measurement); for `model` also BENCH_MODEL,
 * BENCH_BATCH, BENCH_THREADS (comma-separated thread counts, default 1 … physical cores),
 * BENCH_ENGINES (comma-separated peers, default all); TESSERA_TORCH2_PATH names the PyTorch 2.x
 * install (default /opt/torch2, where scripts/install_torch2.sh puts it).
 */
import { benchEngine } from './engine.js';
import { benchLoader } from './loader.js';
import { benchModel, ENGINE_IDS, formatModelBench, type EngineId } from '../src/bench/model_bench.js';

const list = (v: string | undefined) => v?.split(',').map((s) => s.trim()).filter(Boolean);
const engines = list(process.env.BENCH_ENGINES);
const unknown = engines?.filter((e) => !(ENGINE_IDS as readonly string[]).includes(e));
if (unknown?.length) {
  console.error(`BENCH_ENGINES: unknown ${unknown.join(', ')}; choose from ${ENGINE_IDS.join(', ')}`);
  process.exit(2);
}

const benches: Record<string, () => Promise<string>> = {
  loader: () => benchLoader(),
  engine: () => benchEngine(Number(process.env.BENCH_REPEATS ?? 20)),
  // the same measurement as `tessera bench --model vit_tiny_patch16_224 --batch-size 32`
  model: async () => formatModelBench(await benchModel({
    model: process.env.BENCH_MODEL ?? 'vit_tiny_patch16_224',
    batchSize: Number(process.env.BENCH_BATCH ?? 32),
    repeats: Number(process.env.BENCH_REPEATS ?? 10),
    threadCounts: list(process.env.BENCH_THREADS)?.map(Number),
    engines: engines as EngineId[] | undefined,
  }, (m) => process.stderr.write(`… ${m}\n`))),
};

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of names.length ? names : Object.keys(benches)) {
  const run = benches[name];
  if (!run) {
    console.error(`unknown benchmark "${name}"; choose from ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  console.log(await run());
  console.log();
}
