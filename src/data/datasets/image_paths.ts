/**
 * The image files a command line names, for `predict`: a file as given, a directory searched
 * recursively for image files (by extension; hidden entries skipped), or a glob pattern (`*`, `?`,
 * `[…]`, and `**` for any depth) that the shell passed through quoted, so that more files than an
 * argument list holds can be named. Entries are sorted by code point within each directory and
 * yielded as the walk finds them: one directory's listing is in memory at a time, never the set.
 * Node 20 has no fs.glob (22+), and the patterns a user types need only this much.
 */
import { opendir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, isAbsolute, join, sep } from 'node:path';
import { IMAGE_EXTENSIONS, compareCodePoints } from './folder_dataset.js';

/** A file to read, or an argument that names none (reported, and the rest go on). */
export type ImageArg = { path: string } | { error: string };

const isImageName = (name: string) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
const GLOB_CHARS = /[*?[]/;

export async function* imagePathsOf(args: readonly string[]): AsyncGenerator<ImageArg> {
  for (const arg of args) {
    const found = await stat(arg).catch(() => undefined);
    if (found?.isDirectory()) {
      let any = false;
      for await (const path of imagesUnder(arg)) {
        any = true;
        yield { path };
      }
      if (!any) yield { error: `${arg}: a directory with no image files (${[...IMAGE_EXTENSIONS].join(' ')})` };
    } else if (found || !GLOB_CHARS.test(arg)) {
      // a missing file is the decoder's to report, with the reason
      yield { path: arg };
    } else {
      let any = false;
      for await (const path of globFiles(arg)) {
        any = true;
        yield { path };
      }
      if (!any) yield { error: `${arg}: no files match this pattern` };
    }
  }
}

/**
 * The visible entries of `dir` in code-point order, directories (symbolic links to them too)
 * marked by a trailing "/": only names are kept, about 50 bytes each, so a directory of 100,000
 * images costs a few MB while it is walked. `keep` drops the names of no interest as they stream.
 */
async function sortedEntries(dir: string, keep: (name: string) => boolean = () => true): Promise<string[]> {
  const names: string[] = [];
  let handle;
  try {
    handle = await opendir(dir);
  } catch {
    return names;
  }
  for await (const e of handle) {
    if (e.name.startsWith('.')) continue;
    const directory = e.isDirectory() || (e.isSymbolicLink() && (await stat(join(dir, e.name)).catch(() => undefined))?.isDirectory() === true);
    if (directory) names.push(`${e.name}/`);
    else if (keep(e.name)) names.push(e.name);
  }
  return names.sort(compareCodePoints);
}

const isDirName = (name: string) => name.endsWith('/');
const bare = (name: string) => (isDirName(name) ? name.slice(0, -1) : name);

/** Image files under `dir`, depth first, each directory's entries in code-point order. */
async function* imagesUnder(dir: string): AsyncGenerator<string> {
  for (const name of await sortedEntries(dir, isImageName)) {
    const path = join(dir, bare(name));
    if (isDirName(name)) yield* imagesUnder(path);
    else yield path;
  }
}

/** One path segment of a pattern as a regular expression (hidden entries are skipped before matching). */
export function segmentMatcher(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        const body = segment.slice(i + 1, end);
        re += `[${body.startsWith('!') || body.startsWith('^') ? `^${body.slice(1)}` : body}]`.replace(/\\/g, '\\\\');
        i = end;
      }
    } else re += ch.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Files matching `pattern`, walked from its first segment with a wildcard. */
async function* globFiles(pattern: string): AsyncGenerator<string> {
  const parts = pattern.split(/[\\/]+/);
  const first = parts.findIndex((p) => GLOB_CHARS.test(p));
  const base = parts.slice(0, first).join(sep) || (isAbsolute(pattern) ? sep : '.');
  const root = isAbsolute(pattern) && first === 0 ? sep : base;
  yield* matchFrom(root, parts.slice(first), first === 0 && !isAbsolute(pattern));
}

/** `relative`: paths are yielded without the "./" of a pattern that started in the working directory. */
async function* matchFrom(dir: string, rest: readonly string[], relative: boolean): AsyncGenerator<string> {
  const [segment, ...after] = rest;
  if (segment === undefined) return;
  const out = (name: string) => (relative && dir === '.' ? name : join(dir, name));
  if (segment === '**') {
    // zero directories, then one more level and ** again
    yield* matchFrom(dir, after, relative);
    for (const name of await sortedEntries(dir, () => false)) yield* matchFrom(out(bare(name)), rest, false);
    return;
  }
  if (!GLOB_CHARS.test(segment)) {
    const path = out(segment);
    if (after.length === 0) {
      if (existsSync(path) && !(await stat(path)).isDirectory()) yield path;
    } else yield* matchFrom(path, after, false);
    return;
  }
  const matcher = segmentMatcher(segment);
  for (const name of await sortedEntries(dir, (n) => after.length === 0 && matcher.test(n))) {
    if (!matcher.test(bare(name))) continue;
    const path = out(bare(name));
    if (after.length === 0 && !isDirName(name)) yield path;
    else if (after.length > 0 && isDirName(name)) yield* matchFrom(path, after, false);
  }
}
