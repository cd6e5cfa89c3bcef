/**
 * The preprocessing a training run uses when the data is not the model's: the input channel
 * count (--model-kwargs in_chans=N, else a --stats file's, else the architecture's) and the
 * mean/std (a `tessera stats` file's; else the architecture's, its average repeated when the
 * channel count differs, as a 3-channel mean says nothing about a fourth band).
 */
import { readFileSync } from 'node:fs';

export interface StatsFile { channels: number; mean: number[]; std: number[] }

export function readStatsFile(path: string): StatsFile {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new RangeError(`--stats ${path}: not a readable JSON file (${(e as Error).message.split('\n')[0]})`);
  }
  const s = v as Partial<StatsFile>;
  const ok = (a: unknown): a is number[] => Array.isArray(a) && a.length > 0 && a.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!ok(s.mean) || !ok(s.std) || s.mean.length !== s.std.length || s.std.some((x) => x <= 0)) {
    throw new RangeError(`--stats ${path}: expected {"mean": [...], "std": [...]} of equal length with positive std (as tessera stats --out writes)`);
  }
  return { channels: s.mean.length, mean: s.mean, std: s.std };
}

export function trainingPreprocessing(
  pre: { inputSize: readonly number[]; mean: readonly number[]; std: readonly number[] },
  cfg: { stats?: string; modelKwargs?: Record<string, unknown> },
): { channels: number; mean: number[]; std: number[] } {
  const stats = cfg.stats ? readStatsFile(cfg.stats) : undefined;
  const kw = cfg.modelKwargs?.inChans;
  const channels = typeof kw === 'number' ? kw : stats?.channels ?? pre.inputSize[0]!;
  if (stats) {
    if (stats.channels !== channels) throw new RangeError(`--stats ${cfg.stats} has ${stats.channels} channels but the model has in_chans ${channels}`);
    return { channels, mean: stats.mean, std: stats.std };
  }
  const fit = (v: readonly number[]) => (v.length === channels ? [...v] : Array<number>(channels).fill(v.reduce((a, b) => a + b, 0) / v.length));
  return { channels, mean: fit(pre.mean), std: fit(pre.std) };
}
