/** Physical core count: ORT's intra-op threads scale with cores, not hyper-threads. */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

let cached: number | undefined;

export function physicalCores(): number {
  if (cached !== undefined) return cached;
  try {
    const cores = new Set<string>();
    for (const cpu of readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d))) {
      const topo = `/sys/devices/system/cpu/${cpu}/topology`;
      cores.add(`${readFileSync(`${topo}/physical_package_id`, 'utf8').trim()}:${readFileSync(`${topo}/core_id`, 'utf8').trim()}`);
    }
    // A container may see fewer CPUs than the host has cores; never exceed what we may use.
    cached = Math.max(1, Math.min(cores.size || availableParallelism(), availableParallelism()));
  } catch {
    cached = availableParallelism();
  }
  return cached;
}
