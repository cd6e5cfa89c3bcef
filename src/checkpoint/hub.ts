/**
 * Hugging Face hub downloads into the hub's own cache layout, so files fetched by Python tools
 * (huggingface_hub, timm, transformers) are reused and vice versa:
 *
 *   <cache>/models--<org>--<name>/blobs/<etag>              the bytes (etag = sha256 for LFS files)
 *   <cache>/models--<org>--<name>/snapshots/<commit>/<file>  relative symlink to the blob
 *   <cache>/models--<org>--<name>/refs/<revision>            the commit a branch or tag points to
 *   <cache>/models--<org>--<name>/.no_exist/<commit>/<file>  known-missing optional files
 *
 * The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. Files are
 * located with a HEAD request on `<endpoint>/<repo>/resolve/<revision>/<file>` (the hub answers
 * with the commit in X-Repo-Commit, the blob's sha256 in X-Linked-Etag and, for LFS files, a
 * redirect to a CDN); `$HF_TOKEN` is sent to the endpoint only, never to the CDN; downloads
 * resume from their `.part` file; LFS blobs are checked against their sha256;
 * `HF_HUB_OFFLINE=1` reads the cache only.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { downloadFile, type DownloadProgress } from '../data/datasets/download.js';

export class HubError extends Error {
  override name = 'HubError';
}

export interface HubOptions {
  /** Default `$HF_ENDPOINT` or https://huggingface.co. */
  endpoint?: string;
  /** Default from `$HF_HUB_CACHE` / `$HF_HOME`. */
  cacheDir?: string;
  /** Default `$HF_TOKEN`. */
  token?: string;
  /** Default `$HF_HUB_OFFLINE` is 1/true/yes. */
  offline?: boolean;
  /** Branch, tag or commit; default 'main'. */
  revision?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

/** The settings `opts` and the environment give. */
export function hubSettings(opts: HubOptions = {}, env: NodeJS.ProcessEnv = process.env) {
  const home = env.HF_HOME ?? join(homedir(), '.cache', 'huggingface');
  return {
    endpoint: (opts.endpoint ?? env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, ''),
    cacheDir: opts.cacheDir ?? env.HF_HUB_CACHE ?? join(home, 'hub'),
    token: opts.token ?? (env.HF_TOKEN || undefined),
    offline: opts.offline ?? /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? ''),
    revision: opts.revision ?? 'main',
  };
}

/**
 * A hub id: `timm/<name>`, `hf:<org>/<name>` or `hf-hub:<org>/<name>`, each with an optional
 * `@revision`. Returns undefined for anything else (a local path).
 */
export function parseHubId(spec: string): { repo: string; revision?: string } | undefined {
  const m = /^(?:hf:|hf-hub:)?([\w.-]+\/[\w.-]+)(?:@([\w./-]+))?$/.exec(spec);
  if (!m) return undefined;
  if (!/^(hf:|hf-hub:|timm\/)/.test(spec)) return undefined;
  if (m[1]!.includes('..') || m[2]?.includes('..')) return undefined;
  return { repo: m[1]!, revision: m[2] };
}

const repoFolder = (cacheDir: string, repo: string) => join(cacheDir, `models--${repo.replace('/', '--')}`);
const isCommit = (rev: string) => /^[0-9a-f]{40}$/.test(rev);

/** The cached file of `repo@revision`, or 'missing' when the hub said it does not exist. */
function cached(folder: string, revision: string, file: string): string | 'missing' | undefined {
  const ref = join(folder, 'refs', revision);
  const commit = isCommit(revision) ? revision : existsSync(ref) ? readFileSync(ref, 'utf8').trim() : undefined;
  if (!commit) return undefined;
  const path = join(folder, 'snapshots', commit, file);
  if (existsSync(path)) return path;
  if (existsSync(join(folder, '.no_exist', commit, file))) return 'missing';
  return undefined;
}

function linkSnapshot(folder: string, commit: string, file: string, blob: string): string {
  const path = join(folder, 'snapshots', commit, file);
  mkdirSync(dirname(path), { recursive: true });
  try {
    if (readlinkSync(path) === relative(dirname(path), blob)) return path;
  } catch { /* not a link yet */ }
  rmSync(path, { force: true });
  try {
    symlinkSync(relative(dirname(path), blob), path);
  } catch {
    copyFileSync(blob, path); // filesystems without symlinks: huggingface_hub copies too
  }
  return path;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

class HubUnreachable extends HubError {}

interface FileInfo { commit: string; etag: string; url: string; sameOrigin: boolean; isLfs: boolean }

/** HEAD on the resolve URL, following the hub's own (relative) redirects but not the CDN's. */
async function headFile(endpoint: string, repo: string, revision: string, file: string, token: string | undefined, signal?: AbortSignal): Promise<FileInfo | { missing: true; commit?: string }> {
  let url = `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
  const origin = new URL(endpoint).origin;
  for (let hop = 0; hop < 5; hop++) {
    let res: Response;
    try {
      res = await fetch(url, { method: 'HEAD', redirect: 'manual', signal, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'accept-encoding': 'identity' } });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const cause = err.cause?.code ?? err.cause?.message ?? err.message;
      if (signal?.aborted) throw e;
      throw new HubUnreachable(`${url}: cannot reach the hub (${cause}) and the file is not cached; check the network or HF_ENDPOINT`);
    }
    const h = res.headers;
    if (res.status === 404) {
      // a missing repo and a missing file are both 404; the error code tells them apart
      if (h.get('x-error-code') === 'RepositoryNotFound') throw new HubError(`${repo}: repository not found on ${endpoint} (private or gated repos need HF_TOKEN)`);
      if (h.get('x-error-code') === 'RevisionNotFound') throw new HubError(`${repo}: revision "${revision}" not found`);
      return { missing: true, commit: h.get('x-repo-commit') ?? undefined };
    }
    if (res.status === 401 || res.status === 403) throw new HubError(`${url}: HTTP ${res.status}; the repository is private or gated: set HF_TOKEN to a token with access`);
    const commit = h.get('x-repo-commit') ?? undefined;
    const etag = (h.get('x-linked-etag') ?? h.get('etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
    if (res.status >= 300 && res.status < 400) {
      const location = h.get('location');
      if (!location) throw new HubError(`${url}: redirect without a Location`);
      const next = new URL(location, url);
      if (next.origin === origin && !commit) { url = next.href; continue; } // a renamed repo
      if (!commit || !etag) throw new HubError(`${url}: the hub's answer lacks X-Repo-Commit / ETag`);
      return { commit, etag, url: next.href, sameOrigin: next.origin === origin, isLfs: h.has('x-linked-etag') };
    }
    if (!res.ok) throw new HubError(`${url}: HTTP ${res.status} ${res.statusText}`);
    if (!commit || !etag) throw new HubError(`${url}: the hub's answer lacks X-Repo-Commit / ETag`);
    return { commit, etag, url, sameOrigin: true, isLfs: h.has('x-linked-etag') };
  }
  throw new HubError(`${url}: too many redirects`);
}

/**
 * The local path of `file` in `repo`, downloading it into the cache when needed. `optional`
 * files that the hub does not have give undefined (and are remembered in `.no_exist`).
 */
export async function hubFile(repo: string, file: string, opts: HubOptions & { optional?: boolean } = {}): Promise<string | undefined> {
  const s = hubSettings(opts);
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo) || repo.includes('..')) throw new HubError(`"${repo}" is not a hub repository id (org/name)`);
  if (s.revision.includes('..') || s.revision.startsWith('/')) throw new HubError(`"${s.revision}" is not a revision`);
  const folder = repoFolder(s.cacheDir, repo);
  const hit = cached(folder, s.revision, file);
  if (s.offline) {
    if (hit === 'missing' || (hit === undefined && opts.optional)) return undefined;
    if (hit === undefined) {
      throw new HubError(`HF_HUB_OFFLINE is set and ${repo}/${file} (revision ${s.revision}) is not in the cache ${s.cacheDir}; download it once online or unset HF_HUB_OFFLINE`);
    }
    return hit;
  }
  let info: Awaited<ReturnType<typeof headFile>>;
  try {
    info = await headFile(s.endpoint, repo, s.revision, file, s.token, opts.signal);
  } catch (e) {
    // as huggingface_hub: an unreachable hub falls back to what the cache has
    if (!(e instanceof HubUnreachable) || hit === undefined) throw e;
    return hit === 'missing' ? undefined : hit;
  }
  if ('missing' in info) {
    if (!opts.optional) throw new HubError(`${repo}: file ${file} not found at revision ${s.revision} (HTTP 404)`);
    const commit = info.commit ?? (isCommit(s.revision) ? s.revision : undefined);
    if (commit) writeNoExist(folder, commit, file);
    return undefined;
  }
  if (!isCommit(s.revision)) {
    mkdirSync(join(folder, 'refs'), { recursive: true });
    const ref = join(folder, 'refs', s.revision);
    if (!existsSync(ref) || readFileSync(ref, 'utf8').trim() !== info.commit) writeFileSync(ref, info.commit);
  }
  const blob = join(folder, 'blobs', info.etag);
  if (!existsSync(blob)) {
    const tmp = `${blob}.incomplete`;
    const headers: Record<string, string> = info.sameOrigin && s.token ? { authorization: `Bearer ${s.token}` } : {};
    await downloadFile(info.url, tmp, { headers, onProgress: opts.onProgress, signal: opts.signal });
    if (info.isLfs && /^[0-9a-f]{64}$/.test(info.etag)) {
      const actual = await sha256File(tmp);
      if (actual !== info.etag) {
        rmSync(tmp, { force: true });
        throw new HubError(`${repo}/${file}: sha256 mismatch (expected ${info.etag}, got ${actual}); the download was deleted, run again`);
      }
    }
    renameSync(tmp, blob);
  }
  return linkSnapshot(folder, info.commit, file, blob);
}

function writeNoExist(folder: string, commit: string, file: string): void {
  const path = join(folder, '.no_exist', commit, file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, '');
}

/**
 * Fetches a ViT checkpoint's files — `model.safetensors` (or `pytorch_model.bin` when the repo
 * has no safetensors), `config.json` and `preprocessor_config.json` when present — and returns
 * the snapshot directory holding them.
 */
export async function downloadCheckpoint(repo: string, opts: HubOptions = {}): Promise<string> {
  const weights = (await hubFile(repo, 'model.safetensors', { ...opts, optional: true }))
    ?? (await hubFile(repo, 'pytorch_model.bin', { ...opts, optional: true }));
  if (!weights) {
    const s = hubSettings(opts);
    throw new HubError(s.offline
      ? `HF_HUB_OFFLINE is set and ${repo} has no model.safetensors or pytorch_model.bin in the cache ${s.cacheDir}; download it once online or unset HF_HUB_OFFLINE`
      : `${repo}: neither model.safetensors nor pytorch_model.bin exists at revision ${s.revision}`);
  }
  for (const extra of ['config.json', 'preprocessor_config.json']) {
    // the weights came from the cache while the hub is unreachable: take what else is cached
    await hubFile(repo, extra, { ...opts, optional: true }).catch((e: unknown) => { if (!(e instanceof HubUnreachable)) throw e; });
  }
  return dirname(weights);
}
