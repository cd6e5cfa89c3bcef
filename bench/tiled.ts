/**
 * Tiled inference against `tessera bench`'s batch inference, interleaved in one run (issue #24's
 * target: tiles/s ≥ 1.0× batch images/s). The model is compiled as `tessera bench` compiles it;
 * the batch side is its measurement (one run of a ready [B, 3, 224, 224] batch), the tiled side
 * is predictTiles over a decoded 4096×4096 RGB image, 224-pixel tiles at 50% overlap (stride
 * 112), crop_pct 1 (tiles are not resized), the same batch size, cutting each batch while the
 * model runs the previous one. Decoding the big file is outside both timings.
 *
 *   npx tsx bench/tiled.ts   (BENCH_MODEL, BENCH_BATCH, BENCH_THREADS, BENCH_SIZE, BENCH_REPEATS)
 */
import { compile } from '../src/runtime/compile.js';
import { createModel } from '../src/models/registry.js';
import { getModelEntry } from '../src/models/registry.js';
import { Random } from '../src/random.js';
import { predictTiles } from '../src/predict/tiled.js';
import { machineDescription, ortVersion } from '../src/bench/timing.js';
import { physicalCores } from '../src/runtime/cores.js';

const name = process.env.BENCH_MODEL ?? 'vit_tiny_patch16_224';
const batchSize = Number(process.env.BENCH_BATCH ?? 32);
const threads = Number(process.env.BENCH_THREADS ?? physicalCores());
const size = Number(process.env.BENCH_SIZE ?? 4096);
const repeats = Number(process.env.BENCH_REPEATS ?? 3);

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

// warm-up both
for (let i = 0; i < 2; i++) await infer.run({ x });
await predictTiles(image, t, run, classes, { tile: h, stride: h / 2, aggregate: 'mean', batchSize });

const batchRates: number[] = [], tileRates: number[] = [];
let tiles = 0;
for (let r = 0; r < repeats; r++) {
  // batch side: as many runs as the tiled side makes, one batch each
  const runs = Math.ceil(((Math.ceil((size - h) / (h / 2)) + 1) ** 2) / batchSize);
  let t0 = performance.now();
  for (let i = 0; i < runs; i++) await infer.run({ x });
  batchRates.push((runs * batchSize) / ((performance.now() - t0) / 1000));
  t0 = performance.now();
  const p = await predictTiles(image, t, run, classes, { tile: h, stride: h / 2, aggregate: 'mean', batchSize });
  tileRates.push(p.tiles.length / ((performance.now() - t0) / 1000));
  tiles = p.tiles.length;
  process.stderr.write(`… round ${r + 1}/${repeats}: batch ${batchRates.at(-1)!.toFixed(1)} img/s, tiled ${tileRates.at(-1)!.toFixed(1)} tiles/s\n`);
}
await infer.dispose();
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const b = median(batchRates), tl = median(tileRates);
console.log(`| model | image | tiles | batch | threads | bench batch inference (img/s) | tiled inference (tiles/s) | ratio |`);
console.log(`|---|---|---|---|---|---|---|---|`);
console.log(`| ${name} | ${size}×${size} RGB, tile ${h}, stride ${h / 2} | ${tiles} | ${batchSize} | ${threads} | ${b.toFixed(1)} | ${tl.toFixed(1)} | ${(tl / b).toFixed(2)}× |`);
console.log(`\n${new Date().toISOString()}, ${machineDescription()}, onnxruntime-node ${ortVersion()}, median of ${repeats} interleaved rounds`);
