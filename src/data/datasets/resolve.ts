/**
 * Finding a built-in dataset's files on disk, downloading them when absent.
 * Search order: --data-dir, $TESSERA_DATA, ~/.cache/tessera/datasets, /usr/share/datasets (Debian's
 * dataset-* packages), each as `<root>/<name>/`. Downloads go to `<data-dir or cache>/<name>/`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { x as extractTar } from 'tar';
import { ChecksumError, downloadFile, md5File, type DownloadProgress } from './download.js';

export interface ResolveOptions {
  /** --data-dir: searched first, and the download target when given. */
  dataDir?: string;
  /** false: never touch the network (the error says where to put the files). Default true. */
  download?: boolean;
  /** Base URL replacing the directory part of every canonical URL; default $TESSERA_DATASET_MIRROR. */
  mirror?: string;
  /** MD5 overrides by file name, e.g. for files a test server generates. */
  checksums?: Readonly<Record<string, string>>;
  onProgress?: (info: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Home directory holding ~/.cache; default os.homedir(). Tests pass a temp dir. */
  homeDir?: string;
  /** Environment for TESSERA_DATA / TESSERA_DATASET_MIRROR; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Root of the system-wide datasets; default /usr/share/datasets. */
  systemDir?: string;
}

export interface DatasetSource {
  /** Name the download is saved as in the dataset directory. */
  file: string;
  url: string;
  md5: string;
  /** For a .tar.gz: the member file names to extract flat into the dataset directory. */
  extract?: readonly string[];
}

export interface DatasetRequest {
  /** 'fashion-mnist' */
  name: string;
  /** What the files are for, in messages: 'fashion-mnist test split'. */
  what: string;
  /** Every file that must be present. */
  files: readonly string[];
  sources: readonly DatasetSource[];
  /** Also accept the files in these subfolders, e.g. 'cifar-10-batches-bin' from a manual `tar xzf`. */
  subdirs?: readonly string[];
}

export const SYSTEM_DATASETS_DIR = '/usr/share/datasets';

const cacheRoot = (opts: ResolveOptions): string => join(opts.homeDir ?? homedir(), '.cache', 'tessera', 'datasets');
const envOf = (opts: ResolveOptions) => opts.env ?? process.env;

/** The directories searched for dataset `name`, in order. */
export function datasetSearchDirs(name: string, opts: ResolveOptions = {}): string[] {
  const roots = [opts.dataDir, envOf(opts)['TESSERA_DATA'], cacheRoot(opts), opts.systemDir ?? SYSTEM_DATASETS_DIR];
  const dirs = roots.filter((r): r is string => r !== undefined && r !== '').map((r) => join(r, name));
  return [...new Set(dirs)];
}

/** Where downloads of dataset `name` are written. */
export function datasetDownloadDir(name: string, opts: ResolveOptions = {}): string {
  return join(opts.dataDir ?? cacheRoot(opts), name);
}

/** The URL a source is fetched from: the mirror, when set, replaces everything up to the last '/'. */
export function sourceUrl(source: DatasetSource, opts: ResolveOptions = {}): string {
  const mirror = opts.mirror ?? envOf(opts)['TESSERA_DATASET_MIRROR'];
  if (!mirror) return source.url;
  return mirror.replace(/\/*$/, '/') + source.url.slice(source.url.lastIndexOf('/') + 1);
}

const isFile = (path: string): boolean => existsSync(path) && statSync(path).isFile();
const hasAll = (dir: string, files: readonly string[]): boolean => files.every((f) => isFile(join(dir, f)));

/** The first searched directory (or its accepted subfolder) that holds every requested file. */
export function findDatasetDir(req: DatasetRequest, opts: ResolveOptions = {}): string | undefined {
  for (const dir of datasetSearchDirs(req.name, opts)) {
    for (const sub of ['', ...(req.subdirs ?? [])]) {
      if (hasAll(join(dir, sub), req.files)) return join(dir, sub);
    }
  }
  return undefined;
}

/** The sources that provide the files missing from `dir`: direct files first, else an archive. */
function neededSources(req: DatasetRequest, dir: string): DatasetSource[] {
  const needed = new Set<DatasetSource>();
  for (const file of req.files) {
    if (isFile(join(dir, file))) continue;
    const source = req.sources.find((s) => s.file === file) ?? req.sources.find((s) => s.extract?.includes(file));
    if (!source) throw new Error(`${req.what}: no download source provides ${file}`);
    needed.add(source);
  }
  return [...needed];
}

function notFoundError(req: DatasetRequest, opts: ResolveOptions, sources: readonly DatasetSource[], reason: string): Error {
  const searched = datasetSearchDirs(req.name, opts).join(', ');
  const what = sources
    .map((s) => (s.extract ? `${s.file} (from ${sourceUrl(s, opts)}) or its extracted ${s.extract.join(', ')}` : `${s.file} (from ${sourceUrl(s, opts)})`))
    .join(', ');
  return new Error(
    `${req.what} not found; searched ${searched}. ${reason}. Put ${what} into ${datasetDownloadDir(req.name, opts)} ` +
      `(or into any searched directory), or set --data-dir / $TESSERA_DATA to a folder holding ${req.name}/`,
  );
}

/** Extracts the named regular-file members of a .tar.gz flat into `dir` (no links, no other paths). */
async function extractMembers(archive: string, dir: string, members: readonly string[]): Promise<void> {
  const tmp = join(dir, `.extract-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const wanted = new Set(members);
    await extractTar({
      file: archive,
      cwd: tmp,
      filter: (path, entry) => 'type' in entry && (entry.type === 'File' || entry.type === 'OldFile') && wanted.has(basename(path)),
    });
    const found = new Map<string, string>();
    for (const rel of readdirSync(tmp, { recursive: true, encoding: 'utf8' })) {
      if (wanted.has(basename(rel)) && isFile(join(tmp, rel))) found.set(basename(rel), join(tmp, rel));
    }
    const missing = members.filter((m) => !found.has(m));
    if (missing.length > 0) throw new Error(`${archive}: archive lacks ${missing.join(', ')}; expected the official ${basename(archive)}`);
    for (const [name, path] of found) await rename(path, join(dir, name));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The directory holding every file of `req`: found by the search, or filled by downloading (and
 * extracting) into the download directory. An archive already placed there is used without network.
 */
export async function resolveDatasetDir(req: DatasetRequest, opts: ResolveOptions = {}): Promise<string> {
  const found = findDatasetDir(req, opts);
  if (found) return found;
  const dir = datasetDownloadDir(req.name, opts);
  const sources = neededSources(req, dir);
  const absent = sources.filter((s) => !isFile(join(dir, s.file)));
  if (opts.download === false && absent.length > 0) throw notFoundError(req, opts, absent, 'Downloads are turned off');

  for (const source of sources) {
    const path = join(dir, source.file);
    const md5 = opts.checksums?.[source.file] ?? source.md5;
    if (isFile(path)) {
      // Placed by hand (or left by an interrupted extraction): check it before trusting it.
      const actual = await md5File(path);
      if (actual !== md5) throw new Error(`${path}: MD5 mismatch, expected ${md5}, got ${actual}; delete it or replace it with the official file`);
    } else {
      try {
        await downloadFile(sourceUrl(source, opts), path, { md5, onProgress: opts.onProgress, signal: opts.signal });
      } catch (e) {
        if (e instanceof ChecksumError || opts.signal?.aborted) throw e;
        throw notFoundError(req, opts, [source], `Download failed: ${(e as Error).message}`);
      }
    }
    if (source.extract) {
      await extractMembers(path, dir, source.extract);
      await rm(path, { force: true }); // the extracted files are what we keep
    }
  }
  const missing = req.files.filter((f) => !isFile(join(dir, f)));
  if (missing.length > 0) throw new Error(`${dir}: still missing ${missing.join(', ')} after downloading ${req.what}`);
  return dir;
}
