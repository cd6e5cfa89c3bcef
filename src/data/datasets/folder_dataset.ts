/**
 * Image datasets on disk, held as paths and labels (never pixels):
 *   - an image folder, one subfolder per class (torchvision ImageFolder: classes sorted as
 *     Python's sorted() sorts them, by code point; files found recursively, os.walk order);
 *   - a `train/` + `val/` (or validation/, valid/, test/) pair of such folders;
 *   - a CSV/JSONL manifest of path,label[,split] rows, paths relative to the manifest;
 *   - for self-supervised pretraining (`unlabelled`), a flat folder of images with no class
 *     subfolders: one class, "unlabelled", whose labels nothing reads.
 * Without a validation part, `valSplit` holds out a seeded, stratified fraction of each class.
 * Every problem is reported here, before training starts.
 */
import { existsSync, readdirSync, statSync, type Dirent } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { Random, mixSeed } from '../../random.js';
import { epochOrder } from '../loader/batch_source.js';
import { DatasetError, isManifestPath, readManifest, type ManifestRow } from './manifest.js';

export { DatasetError };

/** One split: parallel arrays of absolute paths and class indices. */
export interface ImageSamples {
  /** e.g. "/data/pets/train" or "/data/pets.csv (val split 10%)" */
  readonly name: string;
  readonly paths: readonly string[];
  readonly labels: Int32Array;
  readonly classNames: readonly string[];
  readonly length: number;
}

export interface ImageDataset {
  /** the resolved path given */
  readonly source: string;
  readonly layout: 'class-folders' | 'train-val-folders' | 'manifest' | 'flat';
  readonly classNames: readonly string[];
  readonly train: ImageSamples;
  /** undefined when there is no validation part and valSplit is 0 */
  readonly val?: ImageSamples;
  /** where `val` came from */
  readonly valSource: 'folder' | 'manifest' | 'split' | 'none';
  /** files under the class folders that are not images tessera reads (by extension) */
  readonly ignoredFiles: number;
}

export interface OpenImageDatasetOptions {
  /** Fraction of each class held out for validation when the data has no validation part; default 0. */
  valSplit?: number;
  /** Seed of the hold-out; default 0. */
  seed?: number;
  /** A fixed class list (e.g. a checkpoint's); labels or class folders outside it are errors. */
  classNames?: readonly string[];
  /** A folder without class subfolders is one unlabelled class of the images in it (pretraining), not an error. */
  unlabelled?: boolean;
}

/** The one class of a flat folder opened for pretraining. */
export const UNLABELLED_CLASS = 'unlabelled';

/** Extensions (lower case) of the formats the decoder reads: JPEG, PNG, WebP, GIF, TIFF, AVIF. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);
const VAL_FOLDERS = ['val', 'validation', 'valid', 'test'];

/** Python's str ordering: by code point (JavaScript's default sort compares UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator](), ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next(), y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

const isDir = (e: Dirent, parent: string) => e.isDirectory() || (e.isSymbolicLink() && statSync(join(parent, e.name), { throwIfNoEntry: false })?.isDirectory() === true);

function subfolders(dir: string): string[] {
  // hidden folders (.git, .ipynb_checkpoints) are not classes
  return readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.') && isDir(e, dir)).map((e) => e.name).sort(compareCodePoints);
}

/** torchvision make_dataset's walk: sorted(os.walk(dir)) roots, sorted file names in each. */
function imagesUnder(dir: string, counts: { ignored: number }): string[] {
  const roots: [string, string[]][] = [];
  const walk = (d: string) => {
    const files: string[] = [];
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      if (isDir(e, d)) walk(join(d, e.name));
      else if (IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) files.push(e.name);
      else counts.ignored++;
    }
    roots.push([d, files.sort(compareCodePoints)]);
  };
  walk(dir);
  roots.sort((a, b) => compareCodePoints(a[0], b[0]));
  return roots.flatMap(([d, files]) => files.map((f) => join(d, f)));
}

function samples(name: string, paths: string[], labels: number[], classNames: readonly string[]): ImageSamples {
  return { name, paths, labels: Int32Array.from(labels), classNames, length: paths.length };
}

function scanClassFolders(dir: string, classNames: readonly string[] | undefined, counts: { ignored: number }): { classNames: readonly string[]; paths: string[]; labels: number[] } {
  const folders = subfolders(dir);
  if (folders.length === 0) {
    throw new DatasetError(`${dir} has no class subfolders: an image folder needs one subfolder per class (${join(dir, '<class>', '<image>.jpg')}), or give a CSV/JSONL manifest; a flat folder of unlabelled images is for \`tessera pretrain\``);
  }
  const names = classNames ?? folders;
  const index = new Map(names.map((n, i) => [n, i]));
  const unknown = folders.filter((f) => !index.has(f));
  if (unknown.length) throw new DatasetError(`${dir}: class folder${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `"${u}"`).join(', ')} not among the ${names.length} classes (${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''})`);
  const paths: string[] = [], labels: number[] = [];
  for (const folder of folders) {
    const files = imagesUnder(join(dir, folder), counts);
    if (files.length === 0) throw new DatasetError(`class folder ${join(dir, folder)} has no images (${[...IMAGE_EXTENSIONS].join(' ')})`);
    for (const f of files) {
      paths.push(f);
      labels.push(index.get(folder)!);
    }
  }
  return { classNames: names, paths, labels };
}

/** Seeded, stratified hold-out: round(n · fraction) of each class (at least one, never all). */
export function stratifiedSplit(labels: Int32Array, classes: number, fraction: number, seed: number): { train: number[]; val: number[] } {
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  labels.forEach((l, i) => byClass[l]!.push(i));
  const train: number[] = [], val: number[] = [];
  byClass.forEach((idx, c) => {
    new Random(mixSeed(seed, 0x5e1f, c)).shuffle(idx);
    const n = idx.length < 2 ? 0 : Math.min(idx.length - 1, Math.max(1, Math.round(idx.length * fraction)));
    val.push(...idx.slice(0, n));
    train.push(...idx.slice(n));
  });
  return { train: train.sort((a, b) => a - b), val: val.sort((a, b) => a - b) };
}

function pick(s: ImageSamples, idx: number[], name: string): ImageSamples {
  return samples(name, idx.map((i) => s.paths[i]!), idx.map((i) => s.labels[i]!), s.classNames);
}

/** Opens an image folder, a train/val folder pair or a manifest; see the file comment. */
export function openImageDataset(path: string, opts: OpenImageDatasetOptions = {}): ImageDataset {
  const source = resolve(path);
  const valSplit = opts.valSplit ?? 0;
  if (!(valSplit >= 0 && valSplit < 1)) throw new DatasetError(`val-split must be in [0, 1), got ${valSplit}`);
  const stat = statSync(source, { throwIfNoEntry: false });
  if (!stat) throw new DatasetError(`dataset ${path} does not exist (expected an image folder with one subfolder per class, or a .csv/.jsonl manifest)`);
  const counts = { ignored: 0 };
  let base: Omit<ImageDataset, 'val' | 'valSource'> & { val?: ImageSamples; valSource?: ImageDataset['valSource'] };
  if (stat.isFile()) {
    if (!isManifestPath(source)) throw new DatasetError(`dataset ${path} is a file but not a manifest (.csv, .jsonl or .ndjson)`);
    base = fromManifest(source, opts.classNames);
  } else {
    const folders = subfolders(source);
    const valFolder = folders.includes('train') ? VAL_FOLDERS.find((v) => folders.includes(v)) : undefined;
    if (valFolder) {
      const train = scanClassFolders(join(source, 'train'), opts.classNames, counts);
      const val = scanClassFolders(join(source, valFolder), train.classNames, counts);
      base = {
        source, layout: 'train-val-folders', classNames: train.classNames, ignoredFiles: 0, valSource: 'folder',
        train: samples(join(source, 'train'), train.paths, train.labels, train.classNames),
        val: samples(join(source, valFolder), val.paths, val.labels, train.classNames),
      };
    } else if (folders.length === 0 && opts.unlabelled) {
      const paths = imagesUnder(source, counts);
      if (paths.length === 0) throw new DatasetError(`${path} has no images (${[...IMAGE_EXTENSIONS].join(' ')}) and no subfolders`);
      const classNames = [UNLABELLED_CLASS];
      base = { source, layout: 'flat', classNames, ignoredFiles: 0, train: samples(source, paths, paths.map(() => 0), classNames) };
    } else {
      const dir = folders.length === 1 && folders[0] === 'train' ? join(source, 'train') : source;
      const all = scanClassFolders(dir, opts.classNames, counts);
      base = { source, layout: 'class-folders', classNames: all.classNames, ignoredFiles: 0, train: samples(dir, all.paths, all.labels, all.classNames) };
    }
  }
  if (!base.val && valSplit > 0) {
    const { train, val } = stratifiedSplit(base.train.labels, base.classNames.length, valSplit, opts.seed ?? 0);
    const pct = `${+(valSplit * 100).toFixed(2)}%`;
    base = { ...base, valSource: 'split', train: pick(base.train, train, `${base.train.name} (train, ${pct} held out)`), val: pick(base.train, val, `${base.train.name} (val split ${pct})`) };
  }
  return { ...base, valSource: base.valSource ?? 'none', ignoredFiles: counts.ignored };
}

const TRAIN_SPLITS = new Set(['train', 'training']);
const VAL_SPLITS = new Set(['val', 'valid', 'validation', 'test']);

function fromManifest(file: string, fixed: readonly string[] | undefined): Omit<ImageDataset, 'valSource' | 'val'> & { val?: ImageSamples; valSource?: 'manifest' } {
  const rows = readManifest(file);
  const dir = dirname(file);
  const badSplit = rows.find((r) => r.split !== undefined && !TRAIN_SPLITS.has(r.split.toLowerCase()) && !VAL_SPLITS.has(r.split.toLowerCase()));
  if (badSplit) throw new DatasetError(`manifest ${file}, line ${badSplit.line}: split "${badSplit.split}" is not train or val`);
  const classNames = fixed ?? manifestClasses(rows);
  const index = new Map(classNames.map((n, i) => [n, i]));
  const unknown = [...new Set(rows.filter((r) => !index.has(r.label)).map((r) => r.label))];
  if (unknown.length) {
    const line = rows.find((r) => r.label === unknown[0])!.line;
    throw new DatasetError(`manifest ${file}: unknown label${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 5).map((u) => `"${u}"`).join(', ')}${unknown.length > 5 ? ', …' : ''} (first on line ${line}); the classes are ${classNames.slice(0, 10).join(', ')}${classNames.length > 10 ? ', …' : ''}`);
  }
  const missing: ManifestRow[] = [];
  const resolved = rows.map((r) => {
    const p = isAbsolute(r.path) ? r.path : join(dir, r.path);
    if (!existsSync(p)) missing.push(r);
    return p;
  });
  if (missing.length) {
    const first = missing.slice(0, 3).map((r) => `line ${r.line}: ${r.path}`).join('; ');
    throw new DatasetError(`manifest ${file}: ${missing.length} of ${rows.length} files do not exist (${first}${missing.length > 3 ? '; …' : ''}); paths are relative to ${dir}`);
  }
  const part = (keep: (r: ManifestRow) => boolean, name: string) => {
    const idx = rows.map((r, i) => (keep(r) ? i : -1)).filter((i) => i >= 0);
    return samples(name, idx.map((i) => resolved[i]!), idx.map((i) => index.get(rows[i]!.label)!), classNames);
  };
  const isVal = (r: ManifestRow) => r.split !== undefined && VAL_SPLITS.has(r.split.toLowerCase());
  const hasVal = rows.some(isVal);
  const train = part((r) => !isVal(r), hasVal ? `${file} (train rows)` : file);
  if (train.length === 0) throw new DatasetError(`manifest ${file} has no training rows (every row's split is val)`);
  const common = { source: file, layout: 'manifest' as const, classNames, ignoredFiles: 0, train };
  return hasVal ? { ...common, val: part(isVal, `${file} (val rows)`), valSource: 'manifest' } : common;
}

/** Class names of a manifest: numeric order when every label is an integer, else code-point order. */
function manifestClasses(rows: readonly ManifestRow[]): string[] {
  const labels = [...new Set(rows.map((r) => r.label))];
  return labels.every((l) => /^-?\d+$/.test(l)) ? labels.sort((a, b) => Number(a) - Number(b)) : labels.sort(compareCodePoints);
}

/** Keeps the samples of `classes`, relabelled in that order. */
export function selectSampleClasses(s: ImageSamples, classes: readonly number[]): ImageSamples {
  const known = s.classNames.length;
  const bad = classes.find((c) => c >= known);
  if (bad !== undefined) throw new RangeError(`--classes ${bad} is out of range: ${s.name} has ${known} classes (0…${known - 1})`);
  const relabel = new Map(classes.map((c, i) => [c, i]));
  const keep = [...s.labels.keys()].filter((i) => relabel.has(s.labels[i]!));
  const classNames = classes.map((c) => s.classNames[c]!);
  return { name: s.name, paths: keep.map((i) => s.paths[i]!), labels: Int32Array.from(keep, (i) => relabel.get(s.labels[i]!)!), classNames, length: keep.length };
}

/** A seeded random subset of n samples (class folders are sorted by class, so a prefix would be one class). */
export function subsetSamples(s: ImageSamples, n: number, seed: number): ImageSamples {
  if (n >= s.length) return s;
  const keep = [...epochOrder(s.length, true, seed, 0x11a1).subarray(0, n)].sort((a, b) => a - b);
  return { ...s, name: `${s.name} (${n} of ${s.length})`, paths: keep.map((i) => s.paths[i]!), labels: Int32Array.from(keep, (i) => s.labels[i]!), length: n };
}

export const describeDataset = (d: ImageDataset): string =>
  `${basename(d.source)}: ${d.train.length} training${d.val ? ` and ${d.val.length} validation (${d.valSource})` : ''} images, ${d.classNames.length} classes` +
  (d.ignoredFiles ? `, ${d.ignoredFiles} non-image files ignored` : '') + ` [${relative(process.cwd(), d.source) || '.'}]`;
