/**
 * The run directory (DESIGN.md §3): config.json, metrics.jsonl, last/best.safetensors and
 * state.safetensors (optimiser moments, EMA weights, counters).
 *
 * What an epoch's end or an interrupt writes becomes visible together or not at all. Its files
 * go into a new directory commits/<id>/ with commit.json (their sizes and SHA-256); the commit
 * itself is one rename, of the symlink `current` onto that directory. The files users open stay
 * at their documented paths as symlinks through it (last.safetensors -> current/last.safetensors),
 * so at every moment, killed or not, they are one commit's files. A resume checks the commit
 * against its commit.json and removes what an uncommitted write left. A directory written
 * before commits (regular files, no `current`) is adopted as its first commit by hard links,
 * which changes no file's contents.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { linkOrCopy, makeDir, removePath, replaceWithSymlink, syncDir, writeFileAtomic } from '../checkpoint/atomic.js';
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
  /** The symlink naming the last commit: `commits/<id>`. */
  current: string;
  commits: string;
}

/** The files a commit holds, under their documented names. */
export const COMMITTED_FILES = ['last.safetensors', 'best.safetensors', 'state.safetensors', 'metrics.jsonl'] as const;
export type CommittedFile = (typeof COMMITTED_FILES)[number];

/** commit.json: what one commit holds. */
export interface CommitRecord {
  id: string;
  /** Epochs done, and micro-batches done of the next one (0 at an epoch's end). */
  epoch: number;
  batch: number;
  files: Partial<Record<CommittedFile, { bytes: number; sha256: string }>>;
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
    current: join(dir, 'current'),
    commits: join(dir, 'commits'),
  };
}

/** What a run directory holds: `current` first (removing it uncommits the run), the config, the report and report.ts's charts. */
const RUN_ENTRIES = ['current', 'commits', 'config.json', ...COMMITTED_FILES, 'report.html', 'loss.png', 'accuracy.png', 'confusion.png'];

/** Whether `dir` already holds (part of) a training run. */
function holdsRun(dir: string): boolean {
  return RUN_ENTRIES.some((name) => lexists(join(dir, name)));
}

export function refuseExistingRun(dir: string): void {
  if (holdsRun(dir)) throw new Error(`--output ${dir} already holds a training run; continue it with --resume ${dir}, or pass --overwrite to replace it`);
}

/** A new directory for a run: `base`, or `base-2`, `base-3`… when another run took it (two runs started in the same second). */
export function claimNewRunDir(base: string): string {
  makeDir(dirname(base));
  for (let i = 1; ; i++) {
    const dir = i === 1 ? base : `${base}-${i}`;
    try {
      makeDir(dir, { exclusive: true });
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Writes config.json and the (until the first commit dangling) links to the committed files; `overwrite` first removes a run there. */
export function createRunDir(dir: string, config: TrainConfig, overwrite = false): RunFiles {
  const files = runFiles(dir);
  if (overwrite) {
    for (const name of RUN_ENTRIES) if (lexists(join(dir, name))) removePath(join(dir, name));
    removeTemps(dir);
  } else {
    refuseExistingRun(dir);
  }
  makeDir(dir);
  writeFileAtomic(files.config, `${JSON.stringify(config, null, 2)}\n`);
  linkCommittedFiles(files);
  return files;
}

/**
 * One commit: `write` saves the new files into `stage` (a fresh commits/<id>/), `keep` names the
 * files carried over from the current commit (hard links, no copy); then commit.json, and the
 * rename of `current` onto the new directory, the one step that makes it visible. The previous
 * commit's directory is removed afterwards.
 */
export function commitRun(files: RunFiles, at: { epoch: number; batch: number }, write: (stage: RunFiles) => void, keep: readonly CommittedFile[]): CommitRecord {
  const id = at.batch ? `epoch-${at.epoch + 1}-batch-${at.batch}` : `epoch-${at.epoch}`;
  const stage = runFiles(join(files.commits, id));
  if (lexists(stage.dir)) {
    // positions only advance, so this is an uncommitted write of the same position, never the current commit
    if (lstatOrUndefined(files.current) && basename(readlinkSync(files.current)) === id) throw new Error(`internal error: commit ${id} of ${files.dir} would replace itself`);
    removePath(stage.dir);
  }
  makeDir(stage.dir);
  write(stage);
  for (const name of keep) {
    const from = committedPath(files, name);
    if (from) linkOrCopy(from, join(stage.dir, name));
  }
  const record: CommitRecord = { id, epoch: at.epoch, batch: at.batch, files: {} };
  for (const name of COMMITTED_FILES) if (existsSync(join(stage.dir, name))) record.files[name] = digest(join(stage.dir, name));
  writeFileAtomic(join(stage.dir, COMMIT_RECORD), `${JSON.stringify(record, null, 1)}\n`);
  syncDir(stage.dir);
  syncDir(files.commits);
  replaceWithSymlink(files.current, `commits/${id}`);
  syncDir(files.dir);
  linkCommittedFiles(files);
  removeOtherCommits(files, id);
  return record;
}

/**
 * Before a resume: the run's last commit, checked against its commit.json, with whatever an
 * uncommitted write left removed; undefined when nothing was committed yet (the run starts from
 * the beginning).
 */
export function recoverRunDir(files: RunFiles): CommitRecord | undefined {
  removeTemps(files.dir);
  let record = readCommit(files);
  if (!record && lstatOrUndefined(files.state)?.isFile()) record = adoptRun(files);
  if (!record) {
    if (lexists(files.commits)) removePath(files.commits);
    return undefined;
  }
  linkCommittedFiles(files);
  removeOtherCommits(files, record.id);
  return record;
}

const COMMIT_RECORD = 'commit.json';

function readCommit(files: RunFiles): CommitRecord | undefined {
  let target: string;
  try {
    target = readlinkSync(files.current);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const id = basename(target);
  const dir = join(files.commits, id);
  const damaged = (what: string) => new Error(`cannot resume ${files.dir}: ${what}; the run directory was changed after that commit was written`);
  const recordPath = join(dir, COMMIT_RECORD);
  if (!existsSync(recordPath)) throw damaged(`${files.current} names ${target}, which has no ${COMMIT_RECORD}`);
  const record = JSON.parse(readFileSync(recordPath, 'utf8')) as CommitRecord;
  for (const [name, want] of Object.entries(record.files)) {
    const path = join(dir, name);
    if (!existsSync(path)) throw damaged(`${path} is missing (${COMMIT_RECORD} lists it)`);
    const got = digest(path);
    if (got.bytes !== want.bytes || got.sha256 !== want.sha256) {
      throw damaged(`${path} has ${got.bytes} bytes (SHA-256 ${got.sha256.slice(0, 12)}…) but ${COMMIT_RECORD} records ${want.bytes} (${want.sha256.slice(0, 12)}…)`);
    }
  }
  // a copy by a tool that made the link absolute (Node's fs.cp does) still names this directory's commit
  if (target !== `commits/${id}`) replaceWithSymlink(files.current, `commits/${id}`);
  return record;
}

/** A run directory written before commits: its files become the first commit, under the same contents. */
function adoptRun(files: RunFiles): CommitRecord {
  const { pos } = loadState(files);
  const lastEpoch = existsSync(files.last) ? checkpointEpoch(files.last) : undefined;
  if (lastEpoch !== undefined && lastEpoch !== pos.epoch) {
    throw new Error(`cannot resume ${files.dir}: last.safetensors is from epoch ${lastEpoch} but state.safetensors from epoch ${pos.epoch} (a run killed between its writes, before tessera committed them together); resuming would train the wrong weights, so start the run again with --overwrite`);
  }
  return commitRun(files, pos, () => {}, COMMITTED_FILES);
}

function checkpointEpoch(path: string): number | undefined {
  const raw = readSafetensors(path).metadata.tessera;
  return raw ? (JSON.parse(raw) as { epoch?: number }).epoch : undefined;
}

/** The documented names, as links through `current` (replacing regular files of a directory from before commits). */
function linkCommittedFiles(files: RunFiles): void {
  for (const name of COMMITTED_FILES) {
    const path = join(files.dir, name);
    const target = `current/${name}`;
    if (lstatOrUndefined(path)?.isSymbolicLink() && readlinkSync(path) === target) continue;
    replaceWithSymlink(path, target);
  }
}

/** Temp files of writes that never reached their rename (atomic.ts names them `.<name>.<pid>.tmp`). */
function removeTemps(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) if (/^\..+\.\d+\.tmp$/.test(name)) removePath(join(dir, name));
}

function removeOtherCommits(files: RunFiles, id: string): void {
  if (!existsSync(files.commits)) return;
  for (const name of readdirSync(files.commits)) if (name !== id) removePath(join(files.commits, name));
}

/** The file a documented name resolves to now (through `current`, or a regular file), if any. */
function committedPath(files: RunFiles, name: CommittedFile): string | undefined {
  try {
    return realpathSync(join(files.dir, name));
  } catch {
    return undefined;
  }
}

function digest(path: string): { bytes: number; sha256: string } {
  const bytes = readFileSync(path);
  return { bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
}

const lstatOrUndefined = (path: string) => lstatSync(path, { throwIfNoEntry: false });
const lexists = (path: string) => lstatOrUndefined(path) !== undefined;

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
