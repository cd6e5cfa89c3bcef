/**
 * The class names of a timm training run, in timm's label order, for `tessera import-run`:
 * a names file the user gives, else the run's --class-map file, else the class folders of its
 * training split (timm's ImageFolder order), else the names of a torchvision dataset tessera
 * knows. Each source must name exactly the model's classes.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { builtinClassNames } from '../data/datasets/builtin.js';

export interface ClassNames {
  names: string[];
  /** Where they came from, for the one-line summary. */
  from: string;
}

/** timm's natural_key: case-folded, digit runs compared as numbers (class10 after class9). */
function naturalCompare(a: string, b: string): number {
  const parts = (s: string) => s.toLowerCase().split(/(\d+)/);
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    // split() puts digit runs at odd indices in both
    if (i % 2 === 1) return Number(p) - Number(q);
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
}

/** One name per line (blank lines skipped), as timm's load_class_map reads a .txt: line i is class i. */
function namesFile(path: string): string[] {
  return readFileSync(path, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** The subfolders of the training split holding files, in timm's order (its ImageFolder reader sorts labels by natural_key). */
function classFolders(dataDir: string, split: string): string[] | undefined {
  const root = [join(dataDir, split), dataDir].find(isDir);
  if (!root) return undefined;
  const dirs = readdirSync(root).filter((n) => isDir(join(root, n)));
  return dirs.length ? dirs.sort(naturalCompare) : undefined;
}

const TORCHVISION: Record<string, string> = { 'torch/fashion_mnist': 'fashion-mnist', 'torch/mnist': 'mnist' };

/**
 * The names for `numClasses` classes: `file` (an explicit --class-names) must fit; the run's own
 * sources are tried in turn and one that does not fit is skipped with the reason in `skipped`.
 */
export function timmClassNames(args: Record<string, unknown>, runDir: string, numClasses: number, file?: string): { found?: ClassNames; skipped: string[] } {
  if (file) {
    const names = namesFile(file);
    if (names.length !== numClasses) throw new Error(`--class-names ${file}: ${names.length} names, expected one per line for the model's ${numClasses} classes`);
    return { found: { names, from: file }, skipped: [] };
  }
  const skipped: string[] = [];
  const fits = (names: string[] | readonly string[] | undefined, from: string): ClassNames | undefined => {
    if (!names) return undefined;
    if (names.length === numClasses) return { names: [...names], from };
    skipped.push(`${from} names ${names.length} classes, the model has ${numClasses}`);
    return undefined;
  };
  const classMap = typeof args.class_map === 'string' && args.class_map ? args.class_map : undefined;
  if (classMap) {
    // the path as train.py saw it, else beside args.yaml
    const path = [classMap, isAbsolute(classMap) ? undefined : join(runDir, classMap)].find((p) => p && existsSync(p));
    if (!path) skipped.push(`--class-map ${classMap} is not on this machine`);
    else if (!/\.txt$/i.test(path)) skipped.push(`--class-map ${path} is not a .txt names file`);
    else {
      const found = fits(namesFile(path), `--class-map ${path}`);
      if (found) return { found, skipped };
    }
  }
  const dataDir = typeof args.data_dir === 'string' && args.data_dir ? args.data_dir : typeof args.data === 'string' && args.data ? args.data : undefined;
  const dataset = typeof args.dataset === 'string' ? args.dataset : '';
  if (dataDir && (dataset === '' || dataset.startsWith('folder/'))) {
    const split = typeof args.train_split === 'string' ? args.train_split : 'train';
    const folders = classFolders(dataDir, split);
    if (!folders) skipped.push(`the dataset folder ${dataDir} is not on this machine`);
    else {
      const found = fits(folders, `the class folders of ${join(dataDir, split)}`);
      if (found) return { found, skipped };
    }
  }
  const builtin = TORCHVISION[dataset];
  if (builtin) {
    const found = fits(builtinClassNames(builtin), `torchvision's ${dataset.slice('torch/'.length)} classes`);
    if (found) return { found, skipped };
  }
  return { skipped };
}
