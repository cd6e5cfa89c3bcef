/** Downloads against a local HTTP server on 127.0.0.1 (the mirror option points the canonical URLs at it). */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { downloadFile, type DownloadProgress } from '../../src/data/datasets/download.js';
import type { ResolveOptions } from '../../src/data/datasets/resolve.js';
import { CIFAR10_NAMES, cifarRecords, idxBytes, md5, removeTempDirs, tempDir } from './synthetic.js';

interface Route {
  body: Uint8Array;
  /** Send this many bytes of the next full response, then cut the connection. */
  cutOnceAt?: number;
  /** Answer Range requests with the whole file (200), like a server without range support. */
  ignoreRange?: boolean;
}

const files = new Map<string, Route>();
const redirects = new Map<string, string>();
const seen: { path: string; range?: string; authorization?: string }[] = [];
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    seen.push({ path, range: req.headers.range, authorization: req.headers.authorization });
    const target = redirects.get(path);
    if (target) return void res.writeHead(302, { location: target }).end();
    const route = files.get(path);
    if (!route) return void res.writeHead(404).end('not found');
    const { body } = route;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !route.ignoreRange) {
      const start = Number(range[1]);
      if (start >= body.length) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
      return void res.end(body.subarray(start));
    }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    if (route.cutOnceAt !== undefined) {
      const cut = route.cutOnceAt;
      route.cutOnceAt = undefined;
      res.flushHeaders();
      return void res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  removeTempDirs();
});

beforeEach(() => {
  files.clear();
  redirects.clear();
  seen.length = 0;
});

/** Deterministic noise, so gzip cannot shrink the files below a few chunks. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** A gzip IDX test split of n noise images served under /<dir>/, with its MD5 overrides. */
function serveIdxTestSplit(dir: string, n: number): { images: Uint8Array; labels: Uint8Array; checksums: Record<string, string> } {
  const images = gzipSync(idxBytes([n, 28, 28], noise(n * 784, 1)));
  const labels = gzipSync(idxBytes([n], Uint8Array.from({ length: n }, (_, i) => (i * 3) % 10)));
  files.set(`/${dir}/t10k-images-idx3-ubyte.gz`, { body: images });
  files.set(`/${dir}/t10k-labels-idx1-ubyte.gz`, { body: labels });
  return { images, labels, checksums: { 't10k-images-idx3-ubyte.gz': md5(images), 't10k-labels-idx1-ubyte.gz': md5(labels) } };
}

/** A cifar-10-binary.tar.gz like the official one: cifar-10-batches-bin/ with two records per training batch. */
async function cifar10Archive(): Promise<Uint8Array> {
  const build = tempDir();
  const batches = join(build, 'cifar-10-batches-bin');
  mkdirSync(batches);
  for (let b = 1; b <= 5; b++) writeFileSync(join(batches, `data_batch_${b}.bin`), cifarRecords([[b], [b + 1]]));
  writeFileSync(join(batches, 'test_batch.bin'), cifarRecords([[0]]));
  writeFileSync(join(batches, 'batches.meta.txt'), CIFAR10_NAMES.join('\n') + '\n');
  writeFileSync(join(batches, 'readme.html'), '<p>not needed</p>');
  const archive = join(build, 'cifar-10-binary.tar.gz');
  await createTar({ gzip: true, file: archive, cwd: build }, ['cifar-10-batches-bin']);
  return readFileSync(archive);
}

const isolated = (dataDir: string, extra: ResolveOptions = {}): ResolveOptions => ({
  dataDir,
  homeDir: tempDir(),
  env: {},
  systemDir: tempDir(),
  ...extra,
});

describe('downloading built-in datasets from a mirror', () => {
  it('downloads, verifies and loads an IDX split, reporting increasing progress', async () => {
    const served = serveIdxTestSplit('m', 400);
    const dataDir = tempDir();
    const progress: DownloadProgress[] = [];
    const opts = isolated(dataDir, { mirror: `${base}/m/`, checksums: served.checksums, onProgress: (p) => progress.push(p) });
    const ds = await loadBuiltinDataset('fashion-mnist', 'test', opts);
    expect(ds.length).toBe(400);
    expect(Array.from(ds.labels.subarray(0, 4))).toEqual([0, 3, 6, 9]);
    const landed = join(dataDir, 'fashion-mnist', 't10k-images-idx3-ubyte.gz');
    expect(readFileSync(landed)).toEqual(Buffer.from(served.images));
    expect(existsSync(`${landed}.part`)).toBe(false);

    const imageEvents = progress.filter((p) => p.file === 't10k-images-idx3-ubyte.gz');
    expect(imageEvents.length).toBeGreaterThan(2);
    for (let i = 1; i < imageEvents.length; i++) expect(imageEvents[i]!.received).toBeGreaterThanOrEqual(imageEvents[i - 1]!.received);
    expect(imageEvents.at(-1)).toEqual({ file: 't10k-images-idx3-ubyte.gz', received: served.images.length, total: served.images.length });
    expect(progress.some((p) => p.file === 't10k-labels-idx1-ubyte.gz')).toBe(true);

    // Second load: found on disk, no requests.
    seen.length = 0;
    expect((await loadBuiltinDataset('fashion-mnist', 'test', { ...opts, download: false })).length).toBe(400);
    expect(seen).toEqual([]);
  });

  it('a wrong file fails the MD5 check, naming URL, expected and actual hash, and keeps nothing', async () => {
    const served = serveIdxTestSplit('bad', 10);
    const dataDir = tempDir();
    const wrong = 'ffffffffffffffffffffffffffffffff';
    const opts = isolated(dataDir, { mirror: `${base}/bad`, checksums: { ...served.checksums, 't10k-images-idx3-ubyte.gz': wrong } });
    await expect(loadBuiltinDataset('fashion-mnist', 'test', opts)).rejects.toThrow(
      `${base}/bad/t10k-images-idx3-ubyte.gz: MD5 mismatch, expected ${wrong}, got ${md5(served.images)}`,
    );
    const dest = join(dataDir, 'fashion-mnist', 't10k-images-idx3-ubyte.gz');
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('checks downloads against the canonical MD5s unless overridden', async () => {
    serveIdxTestSplit('canon', 10);
    const opts = isolated(tempDir(), { mirror: `${base}/canon` });
    await expect(loadBuiltinDataset('mnist', 'test', opts)).rejects.toThrow('MD5 mismatch, expected 9fb629c4189551a2d022fa330f9573f3');
  });

  it('resumes a cut download with a Range request', async () => {
    const served = serveIdxTestSplit('cut', 400);
    const route = files.get('/cut/t10k-images-idx3-ubyte.gz')!;
    route.cutOnceAt = Math.floor(served.images.length / 2);
    const dataDir = tempDir();
    const opts = isolated(dataDir, { mirror: `${base}/cut`, checksums: served.checksums });
    await expect(loadBuiltinDataset('fashion-mnist', 'test', opts)).rejects.toThrow(/Download failed: .*download interrupted after \d+ bytes/);
    const part = join(dataDir, 'fashion-mnist', 't10k-images-idx3-ubyte.gz.part');
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(served.images.length);

    seen.length = 0;
    const ds = await loadBuiltinDataset('fashion-mnist', 'test', opts);
    expect(ds.length).toBe(400);
    expect(seen.find((s) => s.path === '/cut/t10k-images-idx3-ubyte.gz')?.range).toBe(`bytes=${kept}-`);
    expect(readFileSync(join(dataDir, 'fashion-mnist', 't10k-images-idx3-ubyte.gz'))).toEqual(Buffer.from(served.images));
  });

  it('restarts from zero when the server answers a Range request with 200', async () => {
    const body = noise(100_000, 7);
    files.set('/norange/blob.bin', { body, ignoreRange: true });
    const dest = join(tempDir(), 'blob.bin');
    writeFileSync(`${dest}.part`, noise(5000, 99)); // a stale part that is not even a prefix
    await downloadFile(`${base}/norange/blob.bin`, dest, { md5: md5(body) });
    expect(seen[0]!.range).toBe('bytes=5000-');
    expect(readFileSync(dest)).toEqual(Buffer.from(body));
  });

  it('follows redirects and sends extra headers', async () => {
    const body = noise(3000, 3);
    files.set('/real/blob.bin', { body });
    redirects.set('/moved/blob.bin', '/real/blob.bin');
    const dest = join(tempDir(), 'blob.bin');
    await downloadFile(`${base}/moved/blob.bin`, dest, { md5: md5(body), headers: { authorization: 'Bearer t0ken' } });
    expect(readFileSync(dest)).toEqual(Buffer.from(body));
    expect(seen.map((s) => s.path)).toEqual(['/moved/blob.bin', '/real/blob.bin']);
    expect(seen[0]!.authorization).toBe('Bearer t0ken');
  });

  it('follows a 302 from the mirror when loading a dataset', async () => {
    const served = serveIdxTestSplit('files', 20);
    for (const f of ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']) redirects.set(`/r/${f}`, `${base}/files/${f}`);
    const ds = await loadBuiltinDataset('fashion-mnist', 'test', isolated(tempDir(), { mirror: `${base}/r`, checksums: served.checksums }));
    expect(ds.length).toBe(20);
    expect(seen.map((s) => s.path)).toContain('/files/t10k-images-idx3-ubyte.gz');
  });

  it('downloads and extracts the CIFAR-10 archive, keeping only the extracted files', async () => {
    const body = await cifar10Archive();
    files.set('/kriz/cifar-10-binary.tar.gz', { body });

    const dataDir = tempDir();
    const opts = isolated(dataDir, { mirror: `${base}/kriz`, checksums: { 'cifar-10-binary.tar.gz': md5(body) } });
    const train = await loadBuiltinDataset('cifar10', 'train', opts);
    expect(Array.from(train.labels)).toEqual([1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    expect(train.classNames).toEqual(CIFAR10_NAMES);
    const dir = join(dataDir, 'cifar10');
    expect(existsSync(join(dir, 'data_batch_5.bin'))).toBe(true);
    expect(existsSync(join(dir, 'readme.html'))).toBe(false);
    expect(existsSync(join(dir, 'cifar-10-binary.tar.gz'))).toBe(false);

    seen.length = 0;
    const test = await loadBuiltinDataset('cifar10', 'test', { ...opts, download: false });
    expect(Array.from(test.labels)).toEqual([0]);
    expect(seen).toEqual([]);
  });

  it('uses an archive placed by hand in the download directory without network, after checking its MD5', async () => {
    const body = await cifar10Archive();
    const dataDir = tempDir();
    mkdirSync(join(dataDir, 'cifar10'));
    writeFileSync(join(dataDir, 'cifar10', 'cifar-10-binary.tar.gz'), body);
    const opts = isolated(dataDir, { download: false });
    await expect(loadBuiltinDataset('cifar10', 'test', opts)).rejects.toThrow(
      `${join(dataDir, 'cifar10', 'cifar-10-binary.tar.gz')}: MD5 mismatch, expected c32a1d4ab5d03f1284b67883e8d87530, got ${md5(body)}`,
    );
    const test = await loadBuiltinDataset('cifar10', 'test', { ...opts, checksums: { 'cifar-10-binary.tar.gz': md5(body) } });
    expect(test.length).toBe(1);
    expect(seen).toEqual([]);
  });

  it('no network: the error lists the searched directories and the failed URL', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const dataDir = tempDir();
    const opts = isolated(dataDir, { mirror: `http://127.0.0.1:${port}/` });
    const err = (await loadBuiltinDataset('mnist', 'train', opts).catch((e: Error) => e)) as Error;
    expect(err.message).toContain(`mnist train split not found; searched ${join(dataDir, 'mnist')}`);
    expect(err.message).toContain(`Download failed: http://127.0.0.1:${port}/train-images-idx3-ubyte.gz: download failed (ECONNREFUSED)`);
    expect(err.message).toContain(`Put train-images-idx3-ubyte.gz (from http://127.0.0.1:${port}/train-images-idx3-ubyte.gz) into ${join(dataDir, 'mnist')}`);
  });

  it('reports HTTP errors with their status', async () => {
    await expect(downloadFile(`${base}/missing.bin`, join(tempDir(), 'x'))).rejects.toThrow(`${base}/missing.bin: download failed (HTTP 404 Not Found)`);
  });
});
