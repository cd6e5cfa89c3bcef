/**
 * Tiled inference against `tessera bench`'s batch inference, interleaved in one run (issue #24's
 * target: tiles/s ≥ 1.0× batch images/s), with the tiles cut between runs on the model's thread
 * and on a cutting thread meanwhile (tile_cutter.ts). The model is compiled as `tessera bench` compiles it;
 * the batch side is its measurement (one run of a ready [B, 3, 224, 224] batch), the tiled side
 * is predictTiles over a decoded 4096×4096 RGB image, 224-pixel tiles at 50% overlap (stride
 * 112), crop_pct 1 (tiles are not resized), the same batch size. The order of the three sides
 * rotates from round to round, so a load that drifts within a round does not favour one of them.
 * Decoding the big file is outside both timings. Per round it prints where the tiled side's time
 * went per batch: cutting tiles, the model runs, softmax and aggregate (predictTiles' timings).
 *
 *   npx tsx bench/tiled.ts   (BENCH_MODEL, BENCH_BATCH, BENCH_THREADS, BENCH_SIZE, BENCH_REPEATS)
 */
import { loadavg } from 'node:os';
import { compile } from '../src/runtime/compile.js';
import { createModel, getModelEntry } from '../src/models/registry.js';
import { Random } from '../src/random.js';
import { predictTiles, tileGrid, type TileTimings } from '../src/predict/tiled.js';
import { inlineCutter, startCutThread } from '../src/predict/tile_cutter.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { physicalCores } from '../src/runtime/cores.js';

const name = process.env.BENCH_MODEL ?? 'vit_tiny_patch16_224';
const batchSize = Number(process.env.BENCH_BATCH ?? 32);
const threads = Number(process.env.BENCH_THREADS ?? physicalCores());
const size = Number(process.env.BENCH_SIZE ?? 4096);
const repeats = Number(process.env.BENCH_REPEATS ?? 3);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

console.log(`# bench/tiled.ts: ${name}, ${size}×${size} RGB, batch ${batchSize}, ${threads} ORT threads; ${machineDescription()}; node ${process.version}, onnxruntime-node ${ortVersion()}; load average ${load()} at the start`);

const model = createModel(name);
const pre = getModelEntry(name).pretrained;
const [c, h, w] = model.inputShape;
const infer = await compile((t) => ({ logits: model.forward(t).logits }), [{ name: 'x', shape: ['batch', c, h, w] }], { threads, params: 'initializers' });
const rng = new Random(0);
const x = Float32Array.from({ length: batchSize * c * h * w }, () => rng.uniform() * 2 - 1);
const pixels = Uint8Array.from({ length: size * size * 3 }, () => rng.int(256));
const image = { kind: 'pixels' as const, img: { data: pixels, width: size, height: size, channels: 3 } };
const t = { inputSize: [c, h, w] as const, cropPct: 1, interpolation: pre.interpolation, mean: pre.mean, std: pre.std };
const run = async (xs: Float32Array) => (await infer.run({ x: xs })).logits!.data as Float32Array;
const classes = model.numClasses;
const tileOptions = { tile: h, stride: h / 2, aggregate: 'mean' as const, batchSize };
const tiles = tileGrid(size, size, h, h / 2).length;
// the batch side makes as many runs as the tiled side, one full batch each
const runs = Math.ceil(tiles / batchSize);

const batchSide = async () => {
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await infer.run({ x });
  return (runs * batchSize) / ((performance.now() - t0) / 1000);
};
let timings: TileTimings | undefined;
const cutThread = startCutThread();
const sides = { inline: inlineCutter, thread: cutThread };
type Side = keyof typeof sides;
const tiledSide = async (side: Side) => {
  const t0 = performance.now();
  const p = await predictTiles(image, t, run, classes, { ...tileOptions, cutter: sides[side] });
  timings = p.timings;
  return p.tiles.length / ((performance.now() - t0) / 1000);
};

// warm-up all three
for (let i = 0; i < 2; i++) await infer.run({ x });
for (const side of Object.keys(sides) as Side[]) await tiledSide(side);

const batchRates: number[] = [];
const tileRates: Record<Side, number[]> = { inline: [], thread: [] };
const orders: ('batch' | Side)[][] = [['batch', 'inline', 'thread'], ['thread', 'inline', 'batch'], ['inline', 'thread', 'batch'], ['batch', 'thread', 'inline']];
for (let r = 0; r < repeats; r++) {
  const order = orders[r % orders.length]!;
  const parts: string[] = [];
  for (const s of order) {
    if (s === 'batch') {
      batchRates.push(await batchSide());
      continue;
    }
    tileRates[s].push(await tiledSide(s));
    const k = timings!.batches, ms = (v: number) => (v / k).toFixed(1);
    parts.push(`${s} cut ${tileRates[s].at(-1)!.toFixed(1)} tiles/s (cut ${ms(timings!.cut)} ms, run ${ms(timings!.run)} ms, result ${ms(timings!.result)} ms a batch)`);
  }
  const bRate = batchRates.at(-1)!;
  console.log(`round ${r + 1}/${repeats} (${order.join(', ')}): batch ${bRate.toFixed(1)} img/s; ${parts.join('; ')}; ratios inline ${(tileRates.inline.at(-1)! / bRate).toFixed(3)}×, thread ${(tileRates.thread.at(-1)! / bRate).toFixed(3)}×; load ${load()}`);
}
await cutThread.close();
await infer.dispose();
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const b = median(batchRates);
console.log(`\n| model | image | tiles | batch | threads | bench batch inference (img/s) | tiles cut | tiled inference (tiles/s) | ratio | median per-round ratio |`);
console.log(`|---|---|---|---|---|---|---|---|---|---|`);
for (const s of Object.keys(sides) as Side[]) {
  const tl = median(tileRates[s]);
  const ratios = tileRates[s].map((v, i) => v / batchRates[i]!);
  console.log(`| ${name} | ${size}×${size} RGB, tile ${h}, stride ${h / 2} | ${tiles} | ${batchSize} | ${threads} | ${b.toFixed(1)} | ${s === 'inline' ? 'between runs' : 'on a cutting thread'} | ${tl.toFixed(1)} | ${(tl / b).toFixed(2)}× | ${median(ratios).toFixed(3)}× |`);
}
console.log(`\n${new Date().toISOString()}, median of ${repeats} interleaved rounds; load average ${load()} at the end`);
