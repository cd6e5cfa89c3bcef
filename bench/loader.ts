/**
 * Loader benchmark: images/s of the ImageNet training pipeline (RandomResizedCrop 224 bicubic,
 * horizontal flip, RandAugment rand-m9-mstd0.5-inc1, ToTensor + Normalize) over a folder of
 * 2,000 generated JPEGs of about 500×375, tessera's worker-thread loader against torchvision's
 * DataLoader with PIL on the same folder, the same number of workers, in the same run.
 *
 *   npx tsx bench/loader.ts   (BENCH_IMAGES, BENCH_EPOCHS, BENCH_WORKERS, BENCH_ROUNDS override)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { openImageDataset } from '../src/data/datasets/folder_dataset.js';
import { createImageLoader } from '../src/data/loader/image_loader.js';
import { Random } from '../src/random.js';
import { machineDescription } from '../src/bench/timing.js';
import { peerScript, runPeer, torchAvailable } from '../src/bench/peers.js';

interface TorchLoader { torch: string; torchvision: string; workers: number; ra: string; images_per_second: number[] }

export interface LoaderBenchOptions { images?: number; epochs?: number; workers?: number; batchSize?: number; rounds?: number; log?: (m: string) => void }

/** A photo-like w×h JPEG: a smooth random colour field with a few shapes on it. */
async function photo(rng: Random, w: number, h: number): Promise<Buffer> {
  const field = Buffer.from(Array.from({ length: 4 * 3 * 3 }, () => rng.int(256)));
  const shapes = Array.from({ length: 3 + rng.int(4) }, () => {
    const [x, y, r] = [rng.int(w), rng.int(h), 20 + rng.int(90)];
    const colour = `rgb(${rng.int(256)},${rng.int(256)},${rng.int(256)})`;
    return rng.uniform() < 0.5
      ? `<circle cx="${x}" cy="${y}" r="${r}" fill="${colour}" fill-opacity="0.8"/>`
      : `<rect x="${x - r}" y="${y - r / 2}" width="${2 * r}" height="${r}" fill="${colour}" transform="rotate(${rng.int(90)} ${x} ${y})"/>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${shapes.join('')}</svg>`;
  return sharp(field, { raw: { width: 4, height: 3, channels: 3 } })
    .resize(w, h, { kernel: 'cubic', fit: 'fill' })
    .composite([{ input: Buffer.from(svg) }])
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** `n` JPEGs in 10 class folders under a new temp dir (one in five is portrait 375×500). */
export async function writeBenchFolder(n: number, seed = 0): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-loader-bench-'));
  const rng = new Random(seed);
  for (let c = 0; c < 10; c++) mkdirSync(join(dir, `class_${c}`));
  const jobs = Array.from({ length: n }, (_, i) => ({ i, portrait: rng.uniform() < 0.2, seed: rng.nextU32() }));
  for (let k = 0; k < jobs.length; k += 16) {
    await Promise.all(jobs.slice(k, k + 16).map(async ({ i, portrait, seed: s }) => {
      const [w, h] = portrait ? [375, 500] : [500, 375];
      await sharp(await photo(new Random(s), w, h)).toFile(join(dir, `class_${i % 10}`, `img_${String(i).padStart(5, '0')}.jpg`));
    }));
  }
  return dir;
}

async function tesseraImagesPerSecond(dir: string, workers: number, batchSize: number, epochs: number): Promise<number[]> {
  const data = openImageDataset(dir);
  const loader = createImageLoader(data.train, {
    batchSize, shuffle: true, seed: 0, train: true, workers,
    transform: {
      inputSize: [3, 224, 224], cropPct: 0.875, interpolation: 'bicubic', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
      trainInterpolation: 'bicubic', hflip: 0.5, aa: 'rand-m9-mstd0.5-inc1',
    },
  });
  const rates: number[] = [];
  try {
    for (let epoch = 0; epoch <= epochs; epoch++) {
      const t0 = performance.now();
      let n = 0;
      for (let i = 0; i < loader.numBatches; i++) {
        const batch = await loader.batch(epoch, i);
        n += batch.size;
        // as the trainer does after each step
        loader.release(batch);
      }
      // epoch 0 warms up (worker start, page cache), as in the peer
      if (epoch > 0) rates.push(n / ((performance.now() - t0) / 1000));
    }
  } finally {
    await loader.close();
  }
  return rates;
}

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

/** tessera's loader in a fresh process, as each peer runs in its own: no state from writing the folder. */
function tesseraInFreshProcess(dir: string, workers: number, batchSize: number, epochs: number): number[] {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--measure', dir, String(workers), String(batchSize), String(epochs)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the tessera loader run failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as number[];
}

export async function benchLoader(o: LoaderBenchOptions = {}): Promise<string> {
  const images = o.images ?? 2000, epochs = o.epochs ?? 2, workers = o.workers ?? availableParallelism(), batchSize = o.batchSize ?? 64;
  const rounds = o.rounds ?? 3;
  const log = o.log ?? (() => {});
  log(`writing ${images} JPEGs…`);
  const dir = await writeBenchFolder(images);
  // Flush the new files to disk before anything is timed: otherwise the kernel's write-back of
  // the just-written folder runs during the first loader's epochs. The images stay in the page
  // cache for every loader.
  execFileSync('sync');
  try {
    // rounds alternate the loaders (A B C A B C …), each in a fresh process, so drifts of the
    // machine's speed hit all of them alike; per loader: the median over rounds of each round's
    // median epoch
    const ours: number[] = [];
    const peers = new Map<string, { meta: TorchLoader; rates: number[] }>();
    const withTorch = torchAvailable();
    for (let round = 1; round <= rounds; round++) {
      log(`round ${round}/${rounds}: tessera, ${workers} workers…`);
      ours.push(median(tesseraInFreshProcess(dir, workers, batchSize, epochs)));
      if (!withTorch) continue;
      for (const ra of ['timm', 'torchvision']) {
        log(`round ${round}/${rounds}: torchvision DataLoader (${ra} RandAugment), ${workers} workers…`);
        const p = runPeer<TorchLoader>(peerScript('torch_loader.py'), [dir, workers, batchSize, epochs, ra], 1);
        const entry = peers.get(ra) ?? { meta: p, rates: [] };
        entry.rates.push(median(p.images_per_second));
        peers.set(ra, entry);
      }
    }
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
    const rows = ['| loader | RandAugment | images/s per round | median | tessera ÷ peer |', '|---|---|---|---|---|',
      `| tessera (worker threads, sharp) | timm rand-m9-mstd0.5-inc1 | ${fmt(ours)} | ${median(ours).toFixed(0)} | |`];
    for (const [ra, { meta, rates }] of peers) {
      const label = ra === 'timm' ? 'timm rand-m9-mstd0.5-inc1 (same ops on PIL)' : 'torchvision RandAugment(2, 9)';
      const perRound = ours.map((x, i) => (x / rates[i]!).toFixed(2)).join(', ');
      rows.push(`| torchvision ${meta.torchvision} DataLoader + PIL | ${label} | ${fmt(rates)} | ${median(rates).toFixed(0)} | ${(median(ours) / median(rates)).toFixed(2)} (rounds: ${perRound}) |`);
    }
    const head = `Loader benchmark — ${new Date().toISOString().slice(0, 10)}, ${machineDescription()}; ${images} JPEGs (500×375 and 375×500), ` +
      `batch ${batchSize}, ${workers} workers each, ${rounds} alternating rounds, each loader in a fresh process; a round's rate is the median of ${epochs} epochs after a warm-up epoch` +
      (peers.size ? '' : '; PyTorch not installed: no peer rows');
    return [head, '', ...rows].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv[2] === '--measure') {
    const [dir, workers, batchSize, epochs] = process.argv.slice(3);
    console.log(JSON.stringify(await tesseraImagesPerSecond(dir!, Number(workers), Number(batchSize), Number(epochs))));
  } else {
    const env = (k: string) => (process.env[k] ? Number(process.env[k]) : undefined);
    console.log(await benchLoader({ images: env('BENCH_IMAGES'), epochs: env('BENCH_EPOCHS'), workers: env('BENCH_WORKERS'), rounds: env('BENCH_ROUNDS'), log: (m) => process.stderr.write(`… ${m}\n`) }));
  }
}
