/**
 * Resumable, checksummed HTTP downloads with Node's built-in fetch. Generic on purpose: datasets and
 * hub checkpoints both go through it. Bytes stream into `dest.part`; only a verified file is renamed
 * to `dest`, so `dest` existing means it is complete.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export interface DownloadProgress {
  /** File name being written, e.g. 't10k-images-idx3-ubyte.gz'. */
  file: string;
  /** Bytes on disk so far, including any resumed part. */
  received: number;
  /** Full size when the server says it. */
  total?: number;
}

export interface DownloadOptions {
  /** Expected MD5 (hex) of the whole file. */
  md5?: string;
  /** Extra request headers, e.g. { authorization: 'Bearer …' } for the Hugging Face hub. */
  headers?: Record<string, string>;
  onProgress?: (info: DownloadProgress) => void;
  signal?: AbortSignal;
}

/** The downloaded bytes are not the expected file; the part file has been deleted. */
export class ChecksumError extends Error {
  constructor(
    readonly url: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${url}: MD5 mismatch, expected ${expected}, got ${actual}; the download was deleted, try again or check the mirror`);
    this.name = 'ChecksumError';
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashInto(hash: Hash, path: string): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

export async function md5File(path: string): Promise<string> {
  const hash = createHash('md5');
  await hashInto(hash, path);
  return hash.digest('hex');
}

function describeFailure(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  return err.cause?.code ?? err.cause?.message ?? err.message;
}

/** Start of a `Content-Range: bytes START-END/TOTAL` header, and its total when known. */
function parseContentRange(header: string | null): { start: number; total?: number } | undefined {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header?.trim() ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[2] === '*' ? undefined : Number(m[2]) };
}

async function request(url: string, opts: DownloadOptions, rangeStart: number): Promise<Response> {
  // identity: fetch would otherwise gunzip a Content-Encoding: gzip body, and the MD5 is of the raw file.
  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...opts.headers };
  if (rangeStart > 0) headers['range'] = `bytes=${rangeStart}-`;
  try {
    return await fetch(url, { headers, redirect: 'follow', signal: opts.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw new Error(`${url}: download failed (${describeFailure(e)})`, { cause: e });
  }
}

/**
 * Downloads `url` to `dest`. An existing `dest.part` is resumed with a Range request when the server
 * answers 206; a 200 (range ignored) restarts it from zero.
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<void> {
  const part = `${dest}.part`;
  const file = basename(dest);
  await mkdir(dirname(dest), { recursive: true });

  let offset = await sizeOf(part);
  let res = await request(url, opts, offset);
  let total: number | undefined;
  if (offset > 0 && res.status === 206) {
    const range = parseContentRange(res.headers.get('content-range'));
    if (range?.start === offset) total = range.total;
    else offset = -1; // a range we did not ask for: start over
  } else if (offset > 0) {
    // 200: the server ignored the range and sends everything; 416: the part is no prefix of the file.
    if (res.status === 416) offset = -1;
    else offset = 0;
  }
  if (offset < 0) {
    await res.body?.cancel();
    offset = 0;
    res = await request(url, opts, 0);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`${url}: download failed (HTTP ${res.status} ${res.statusText})`);
  }
  if (offset === 0) {
    const length = res.headers.get('content-length');
    total = length === null ? undefined : Number(length);
  }

  const hash = createHash('md5');
  if (offset > 0) await hashInto(hash, part);
  const out = createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' });
  const closed = new Promise<void>((resolve, reject) => {
    out.on('close', resolve);
    out.on('error', reject);
  });
  let received = offset;
  opts.onProgress?.({ file, received, total });
  try {
    for await (const chunk of res.body) {
      hash.update(chunk);
      received += chunk.byteLength;
      if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
      opts.onProgress?.({ file, received, total });
    }
  } catch (e) {
    out.end();
    await closed.catch(() => undefined); // keep what arrived: the next call resumes from it
    if (opts.signal?.aborted) throw e;
    throw new Error(`${url}: download interrupted after ${received} bytes (${describeFailure(e)}); run again to resume`, { cause: e });
  }
  out.end();
  await closed;
  if (total !== undefined && received !== total) {
    throw new Error(`${url}: download ended after ${received} of ${total} bytes; run again to resume`);
  }

  const actual = hash.digest('hex');
  if (opts.md5 !== undefined && actual !== opts.md5.toLowerCase()) {
    await rm(part, { force: true });
    throw new ChecksumError(url, opts.md5, actual);
  }
  await rename(part, dest);
}
