/**
 * The run directory (DESIGN.md §3): config.json, metrics.jsonl, last/best.safetensors and
 * state.safetensors (optimiser moments, EMA weights, counters). Every file is written
 * atomically, so a killed run never leaves a truncated file.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { readSafetensors, toFloat32, writeSafetensors } from '../checkpoint/safetensors.js';
import type { TrainConfig } from './config.js';

export interface EpochRecord {
  epoch: number;
  step: number;
  lr: number;
  train_loss: number;
  eval_loss?: number;
  eval_top1?: number;
  eval_top5?: number;
  ema_top1?: number;
  /** Accuracy under attack, for adversarial training. */
  robust_top1?: number;
  /** Image datasets: unreadable files skipped so far. */
  skipped_files?: number;
  images_per_second?: number;
  seconds?: number;
}

/** Where a run stands: the next micro-batch to process and the optimiser step count. */
export interface Position {
  epoch: number;
  /** Micro-batches of `epoch` already done. */
  batch: number;
  optimizerStep: number;
  /** Best value so far of the objective's best-checkpoint metric (-Infinity/Infinity before the first). */
  best: number;
  /** Written by runs before objectives: the best eval_top1 (read as `best`). */
  bestTop1?: number;
  /** Running training-loss sum and image count of the unfinished epoch. */
  lossSum?: number;
  lossCount?: number;
}

export interface RunFiles {
  dir: string;
  config: string;
  metrics: string;
  last: string;
  best: string;
  state: string;
  report: string;
}

export function runFiles(dir: string): RunFiles {
  return {
    dir,
    config: join(dir, 'config.json'),
    metrics: join(dir, 'metrics.jsonl'),
    last: join(dir, 'last.safetensors'),
    best: join(dir, 'best.safetensors'),
    state: join(dir, 'state.safetensors'),
    report: join(dir, 'report.html'),
  };
}

export function createRunDir(dir: string, config: TrainConfig): RunFiles {
  mkdirSync(dir, { recursive: true });
  const files = runFiles(dir);
  writeFileAtomic(files.config, `${JSON.stringify(config, null, 2)}\n`);
  return files;
}

export function writeMetrics(files: RunFiles, records: EpochRecord[]): void {
  writeFileAtomic(files.metrics, records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
}

export function readMetrics(files: RunFiles): EpochRecord[] {
  if (!existsSync(files.metrics)) return [];
  return readFileSync(files.metrics, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as EpochRecord);
}

export function saveState(files: RunFiles, pos: Position, tensors: Record<string, Float32Array>): void {
  const entries = Object.fromEntries(Object.entries(tensors).map(([k, data]) => [k, { shape: [data.length], data }]));
  writeSafetensors(files.state, entries, { tessera_state: JSON.stringify(pos) });
}

export function loadState(files: RunFiles): { pos: Position; tensors: Record<string, Float32Array> } {
  if (!existsSync(files.state)) throw new Error(`cannot resume: ${files.state} does not exist`);
  const f = readSafetensors(files.state);
  const raw = f.metadata.tessera_state;
  if (!raw) throw new Error(`cannot resume: ${files.state} has no tessera_state metadata`);
  const tensors: Record<string, Float32Array> = {};
  for (const [k, t] of f.tensors) tensors[k] = toFloat32(t, k);
  const pos = JSON.parse(raw) as Position;
  // JSON has no infinities: an unset best is stored as null
  if (typeof pos.best !== 'number') pos.best = pos.bestTop1 ?? -Infinity;
  return { pos, tensors };
}

export function readRunConfig(dir: string): Record<string, unknown> {
  const path = runFiles(dir).config;
  if (!existsSync(path)) throw new Error(`cannot resume: ${path} does not exist (is ${dir} a run directory?)`);
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}
