/** Timing helpers: median wall time of repeated runs after warm-up; machine description. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { availableParallelism, cpus, totalmem } from 'node:os';

export async function medianSeconds(fn: () => Promise<unknown> | unknown, repeats: number, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function machineDescription(): string {
  return `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${availableParallelism()} logical CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
}

export const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024;

/** The installed onnxruntime-node's version (read from its package.json; the runtime adapter stays its only importer). */
export function ortVersion(): string {
  try {
    const main = createRequire(import.meta.url).resolve('onnxruntime-node');
    let dir = dirname(main);
    for (let i = 0; i < 5; i++, dir = dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'onnxruntime-node' && pkg.version) return pkg.version;
      } catch { /* not here */ }
    }
  } catch { /* not resolvable */ }
  return 'unknown';
}
