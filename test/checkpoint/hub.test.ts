/**
 * Hub downloads against local HTTP servers imitating huggingface.co (resolve URLs, X-Repo-Commit,
 * X-Linked-Etag, a 302 to a CDN on another origin, 401/404 error codes): the hub's cache layout,
 * reuse, HF_HUB_OFFLINE, HF_TOKEN (never sent to the CDN), a connection cut mid-file (resumed
 * with a Range request) and a corrupt download (sha256 mismatch).
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { downloadCheckpoint, hubFile, hubSettings, parseHubId, type HubOptions } from '../../src/checkpoint/hub.js';
import { loadPretrained } from '../../src/checkpoint/pretrained.js';
import { goldens, layoutFixture, logitsOf, maxAbsDiff, removeTempDirs, tempDir } from './layout_helpers.js';

const COMMIT = 'c0ffee'.padEnd(40, '0');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const gitSha = (b: Uint8Array) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

interface RepoFile { body: Uint8Array; lfs: boolean }
interface Repo { files: Map<string, RepoFile>; privateToken?: string }
const repos = new Map<string, Repo>();
const cdnBlobs = new Map<string, { body: Uint8Array; cutOnceAt?: number; corrupt?: boolean }>();
const seen: { server: 'hub' | 'cdn'; method: string; path: string; range?: string; authorization?: string }[] = [];
let hub: Server;
let cdn: Server;
let endpoint: string;
let cdnBase: string;

function hubHandler(req: IncomingMessage, res: ServerResponse): void {
  seen.push({ server: 'hub', method: req.method!, path: req.url!, range: req.headers.range, authorization: req.headers.authorization });
  const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([\w.-]+)\/(.+)$/.exec(req.url ?? '');
  const repo = m && repos.get(m[1]!);
  if (!m || !repo) return void res.writeHead(404, { 'x-error-code': 'RepositoryNotFound' }).end();
  if (repo.privateToken && req.headers.authorization !== `Bearer ${repo.privateToken}`) return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end();
  const file = repo.files.get(m[3]!);
  if (!file) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': COMMIT }).end();
  if (file.lfs) {
    const sha = sha256(file.body);
    return void res.writeHead(302, {
      location: `${cdnBase}/blobs/${sha}?signature=abc`, 'x-repo-commit': COMMIT, 'x-linked-etag': `"${sha}"`,
      'x-linked-size': String(file.body.length), etag: `"${gitSha(file.body)}"`,
    }).end();
  }
  res.writeHead(200, { 'x-repo-commit': COMMIT, etag: `"${gitSha(file.body)}"`, 'content-length': file.body.length });
  res.end(req.method === 'HEAD' ? undefined : file.body);
}

function cdnHandler(req: IncomingMessage, res: ServerResponse): void {
  seen.push({ server: 'cdn', method: req.method!, path: req.url!, range: req.headers.range, authorization: req.headers.authorization });
  const blob = cdnBlobs.get(/^\/blobs\/(\w+)/.exec(req.url ?? '')?.[1] ?? '');
  if (!blob) return void res.writeHead(404).end();
  const body = blob.corrupt ? blob.body.map((b) => b ^ 1) : blob.body;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    return void res.end(body.subarray(start));
  }
  res.writeHead(200, { 'content-length': body.length });
  if (blob.cutOnceAt !== undefined) {
    const cut = blob.cutOnceAt;
    blob.cutOnceAt = undefined;
    res.flushHeaders();
    return void res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
  }
  res.end(body);
}

const listen = async (s: Server) => {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
};

function addRepo(name: string, files: Record<string, string>, privateToken?: string): void {
  const map = new Map<string, RepoFile>();
  for (const [file, fixture] of Object.entries(files)) {
    const body = new Uint8Array(readFileSync(layoutFixture(fixture)));
    const lfs = !file.endsWith('.json');
    map.set(file, { body, lfs });
    if (lfs) cdnBlobs.set(sha256(body), { body });
  }
  repos.set(name, { files: map, privateToken });
}

beforeAll(async () => {
  hub = createServer(hubHandler);
  cdn = createServer(cdnHandler);
  endpoint = await listen(hub);
  cdnBase = await listen(cdn);
});
afterAll(async () => {
  await Promise.all([hub, cdn].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  removeTempDirs();
});
beforeEach(() => {
  repos.clear();
  cdnBlobs.clear();
  seen.length = 0;
  addRepo('timm/vit_test_patch8_32.fake_in1k', { 'model.safetensors': 'timm/model.safetensors', 'config.json': 'timm/config.json' });
});

const opts = (extra: HubOptions = {}): HubOptions => ({ endpoint, cacheDir: tempDir(), token: undefined, offline: false, ...extra });

describe('hub downloads', () => {
  it('timm/<name>: fetched through the CDN redirect into the hub cache layout, and the logits match', async () => {
    const o = opts();
    const pre = await loadPretrained('timm/vit_test_patch8_32.fake_in1k', o);
    const folder = join(o.cacheDir!, 'models--timm--vit_test_patch8_32.fake_in1k');
    expect(pre.path).toBe(join(folder, 'snapshots', COMMIT));
    expect(readFileSync(join(folder, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    const sha = sha256(readFileSync(layoutFixture('timm/model.safetensors')));
    expect(lstatSync(join(pre.path, 'model.safetensors')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(pre.path, 'model.safetensors'))).toBe(join('..', '..', 'blobs', sha));
    expect(readlinkSync(join(pre.path, 'config.json'))).toBe(join('..', '..', 'blobs', gitSha(readFileSync(layoutFixture('timm/config.json')))));
    expect(existsSync(join(folder, '.no_exist', COMMIT, 'preprocessor_config.json'))).toBe(true);
    expect(pre.meta.classNames[2]).toBe('class_2');
    expect(pre.meta.mean).toEqual([0.4, 0.5, 0.6]);
    expect(maxAbsDiff(await logitsOf(pre.meta.config, pre.state, goldens.timm.input_shape), goldens.timm.logits)).toBeLessThanOrEqual(1e-4);
    expect(seen.filter((r) => r.server === 'cdn').map((r) => r.method)).toEqual(['GET']);

    // cached: the hub is asked for the commit (HEAD), nothing is downloaded again
    seen.length = 0;
    await loadPretrained('timm/vit_test_patch8_32.fake_in1k', o);
    expect(seen.every((r) => r.server === 'hub' && r.method === 'HEAD')).toBe(true);

    // offline: no requests at all
    seen.length = 0;
    const offline = await loadPretrained('timm/vit_test_patch8_32.fake_in1k', { ...o, offline: true });
    expect(offline.path).toBe(pre.path);
    expect(seen).toEqual([]);
  });

  it('HF_HUB_OFFLINE with nothing cached says where it looked', async () => {
    const o = opts({ offline: true });
    await expect(loadPretrained('hf:google/vit-base-patch16-224', o)).rejects.toThrow(`HF_HUB_OFFLINE is set and google/vit-base-patch16-224 has no model.safetensors or pytorch_model.bin in the cache ${o.cacheDir}`);
    expect(seen).toEqual([]);
  });

  it('reuses a cache written by Python tools (offline)', async () => {
    const cache = tempDir();
    const folder = join(cache, 'models--google--vit-tiny');
    mkdirSync(join(folder, 'blobs'), { recursive: true });
    mkdirSync(join(folder, 'refs'));
    mkdirSync(join(folder, 'snapshots', COMMIT), { recursive: true });
    for (const f of ['model.safetensors', 'config.json', 'preprocessor_config.json']) {
      const bytes = readFileSync(layoutFixture(`hf/${f}`));
      const etag = f === 'model.safetensors' ? sha256(bytes) : gitSha(bytes);
      writeFileSync(join(folder, 'blobs', etag), bytes);
      symlinkSync(join('..', '..', 'blobs', etag), join(folder, 'snapshots', COMMIT, f));
    }
    writeFileSync(join(folder, 'refs', 'main'), COMMIT);
    const pre = await loadPretrained('hf:google/vit-tiny', { cacheDir: cache, offline: true });
    expect(pre.layout).toBe('hf');
    expect(pre.meta.classNames).toEqual(goldens.hf.class_names);
    expect(maxAbsDiff(await logitsOf(pre.meta.config, pre.state, goldens.hf.input_shape), goldens.hf.logits)).toBeLessThanOrEqual(1e-4);
  });

  it('HF_TOKEN: a private repo is refused without it; with it, the token goes to the hub, never to the CDN', async () => {
    addRepo('acme/private-vit', { 'model.safetensors': 'hf/model.safetensors', 'config.json': 'hf/config.json' }, 'hf_secret');
    await expect(downloadCheckpoint('acme/private-vit', opts())).rejects.toThrow(/HTTP 401; the repository is private or gated: set HF_TOKEN/);
    seen.length = 0;
    const dir = await downloadCheckpoint('acme/private-vit', opts({ token: 'hf_secret' }));
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
    expect(seen.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_secret')).toBe(true);
    expect(seen.filter((r) => r.server === 'cdn').map((r) => r.authorization)).toEqual([undefined]);
  });

  it('404: an unknown repo and a repo without weights are clear errors', async () => {
    await expect(loadPretrained('hf:nobody/nothing', opts())).rejects.toThrow(/nobody\/nothing: repository not found on http:\/\/127\.0\.0\.1:\d+ \(private or gated repos need HF_TOKEN\)/);
    addRepo('acme/config-only', { 'config.json': 'hf/config.json' });
    await expect(downloadCheckpoint('acme/config-only', opts())).rejects.toThrow(/acme\/config-only: neither model\.safetensors nor pytorch_model\.bin exists at revision main/);
    await expect(hubFile('acme/config-only', 'model.safetensors', opts())).rejects.toThrow(/file model\.safetensors not found at revision main \(HTTP 404\)/);
  });

  it('a connection cut mid-file is resumed with a Range request on the next run', async () => {
    const o = opts();
    const body = repos.get('timm/vit_test_patch8_32.fake_in1k')!.files.get('model.safetensors')!.body;
    cdnBlobs.get(sha256(body))!.cutOnceAt = 40_000;
    await expect(downloadCheckpoint('timm/vit_test_patch8_32.fake_in1k', o)).rejects.toThrow(/interrupted after 40000 bytes.*run again to resume/);
    seen.length = 0;
    const dir = await downloadCheckpoint('timm/vit_test_patch8_32.fake_in1k', o);
    expect(seen.filter((r) => r.server === 'cdn').map((r) => r.range)).toEqual(['bytes=40000-']);
    expect(sha256(readFileSync(join(dir, 'model.safetensors')))).toBe(sha256(body));
  });

  it('a download whose sha256 differs from X-Linked-Etag is deleted', async () => {
    const o = opts();
    const body = repos.get('timm/vit_test_patch8_32.fake_in1k')!.files.get('model.safetensors')!.body;
    cdnBlobs.get(sha256(body))!.corrupt = true;
    await expect(downloadCheckpoint('timm/vit_test_patch8_32.fake_in1k', o)).rejects.toThrow(/sha256 mismatch.*the download was deleted/);
    expect(existsSync(join(o.cacheDir!, 'models--timm--vit_test_patch8_32.fake_in1k', 'blobs', sha256(body)))).toBe(false);
  });
});

describe('ids and settings', () => {
  it.each([
    ['timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k', { repo: 'timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k', revision: undefined }],
    ['hf:google/vit-base-patch16-224', { repo: 'google/vit-base-patch16-224', revision: undefined }],
    ['hf-hub:timm/vit_small_patch16_224.augreg_in21k@v1.0', { repo: 'timm/vit_small_patch16_224.augreg_in21k', revision: 'v1.0' }],
    ['runs/x/best.safetensors', undefined],
    ['google/vit-base-patch16-224', undefined],
    ['hf:../etc', undefined],
  ])('%s', (spec, want) => {
    expect(parseHubId(spec)).toEqual(want);
  });

  it('reads HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN and HF_HUB_OFFLINE', () => {
    expect(hubSettings({}, { HF_HOME: '/h' })).toMatchObject({ cacheDir: '/h/hub', endpoint: 'https://huggingface.co', offline: false, token: undefined, revision: 'main' });
    expect(hubSettings({}, { HF_HOME: '/h', HF_HUB_CACHE: '/c', HF_ENDPOINT: 'http://mirror/', HF_TOKEN: 't', HF_HUB_OFFLINE: '1' }))
      .toMatchObject({ cacheDir: '/c', endpoint: 'http://mirror', token: 't', offline: true });
    expect(hubSettings({ offline: false, cacheDir: '/o' }, { HF_HUB_OFFLINE: 'true' })).toMatchObject({ offline: false, cacheDir: '/o' });
  });

  it('a spec that is neither a file nor a hub id', async () => {
    await expect(loadPretrained('no/such/file.safetensors', opts())).rejects.toThrow(/no such file or directory, and not a hub id/);
  });
});

describe('an unreachable hub', () => {
  it('falls back to the cache, and says so when nothing is cached', async () => {
    const o = opts();
    const dir = await downloadCheckpoint('timm/vit_test_patch8_32.fake_in1k', o);
    const closed = createServer();
    const down = { ...o, endpoint: await listen(closed) };
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await downloadCheckpoint('timm/vit_test_patch8_32.fake_in1k', down)).toBe(dir);
    await expect(downloadCheckpoint('timm/other', down)).rejects.toThrow(/cannot reach the hub \(ECONNREFUSED\) and the file is not cached/);
  });
});
