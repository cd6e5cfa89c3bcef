/**
 * Loader benchmark: images/s of the ImageNet training pipeline (RandomResizedCrop 224 bicubic,
 * horizontal flip, RandAugment rand-m9-mstd0.5-inc1, ToTensor + Normalize) over a folder of
 * 2,000 generated JPEGs of about 500×375, tessera's worker-thread loader against torchvision's
 * DataLoader with PIL on the same folder, the same number of workers, in the same run.
 *
 *   npx tsx bench/loader.ts            (BENCH_IMAGES, BENCH_EPOCHS, BENCH_WORKERS override)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { openImageDataset } from '../src/data/folder_dataset.js';
import { createImageLoader } from '../src/data/image_loader.js';
import { Random } from '../src/random.js';
import { machineDescription } from '../src/bench/timing.js';
import { peerScript, runPeer, torchAvailable } from '../src/bench/peers.js';

interface TorchLoader { torch: string; torchvision: string; workers: number; ra: string; images_per_second: number[] }

export interface LoaderBenchOptions { images?: number; epochs?: number; workers?: number; batchSize?: number; log?: (m: string) => void }

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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

export async function benchLoader(o: LoaderBenchOptions = {}): Promise<string> {
  const images = o.images ?? 2000, epochs = o.epochs ?? 2, workers = o.workers ?? availableParallelism(), batchSize = o.batchSize ?? 64;
  const log = o.log ?? (() => {});
  log(`writing ${images} JPEGs…`);
  const dir = await writeBenchFolder(images);
  try {
    log(`tessera, ${workers} workers…`);
    const ours = median(await tesseraImagesPerSecond(dir, workers, batchSize, epochs));
    const peers: TorchLoader[] = [];
    if (torchAvailable()) {
      for (const ra of ['timm', 'torchvision']) {
        log(`torchvision DataLoader (${ra} RandAugment), ${workers} workers…`);
        peers.push(runPeer<TorchLoader>(peerScript('torch_loader.py'), [dir, workers, batchSize, epochs, ra], 1));
      }
    }
    const rows = ['| loader | RandAugment | images/s | tessera ÷ peer |', '|---|---|---|---|', `| tessera (worker threads, sharp) | timm rand-m9-mstd0.5-inc1 | ${ours.toFixed(0)} | |`];
    for (const p of peers) {
      const rate = median(p.images_per_second);
      const label = p.ra === 'timm' ? 'timm rand-m9-mstd0.5-inc1 (same ops on PIL)' : 'torchvision RandAugment(2, 9)';
      rows.push(`| torchvision ${p.torchvision} DataLoader + PIL | ${label} | ${rate.toFixed(0)} | ${(ours / rate).toFixed(2)} |`);
    }
    const head = `Loader benchmark — ${new Date().toISOString().slice(0, 10)}, ${machineDescription()}; ${images} JPEGs (500×375 and 375×500), ` +
      `batch ${batchSize}, ${workers} workers each, median of ${epochs} epochs after a warm-up epoch` + (peers.length ? '' : '; PyTorch not installed: no peer rows');
    return [head, '', ...rows].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const env = (k: string) => (process.env[k] ? Number(process.env[k]) : undefined);
  console.log(await benchLoader({ images: env('BENCH_IMAGES'), epochs: env('BENCH_EPOCHS'), workers: env('BENCH_WORKERS'), log: (m) => process.stderr.write(`… ${m}\n`) }));
}
