/** Timing helpers: median wall time of repeated runs after warm-up; machine description. */
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
