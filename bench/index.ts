/** `npm run bench [-- NAME…]`: runs the named benchmarks (default: all) and prints Markdown tables. */
import { benchEngine } from './engine.js';
import { benchLoader } from './loader.js';
import { benchModel, formatModelBench } from '../src/bench/model_bench.js';

const benches: Record<string, () => Promise<string>> = {
  loader: () => benchLoader(),
  engine: () => benchEngine(Number(process.env.BENCH_REPEATS ?? 20)),
  // the same measurement as `tessera bench --model vit_tiny_patch16_224 --batch-size 32`
  model: async () => formatModelBench(await benchModel({ model: 'vit_tiny_patch16_224', batchSize: 32, repeats: Number(process.env.BENCH_REPEATS ?? 10) },
    (m) => process.stderr.write(`… ${m}\n`))),
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
