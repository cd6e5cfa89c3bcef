/**
 * `tessera serve` as a child process under load: SIGTERM lets the requests in flight finish with
 * real answers, refuses new connections, and the process exits 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor } from '../../src/checkpoint/checkpoint.js';
import { exportModel } from '../../src/export/export.js';
import { createModel } from '../../src/models/registry.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tessera-sigterm-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

let modelPath: string;
let png: Uint8Array<ArrayBuffer>;

beforeAll(async () => {
  const model = createModel('vit_tiny_patch4_28', { seed: 5 });
  modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, exportModel(model, metaFor('vit_tiny_patch4_28', model, Array.from({ length: 10 }, (_, i) => `class ${i}`))).bytes);
  png = new Uint8Array(await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 90, g: 40, b: 200 } } }).png().toBuffer());
});

/** Starts `tessera serve` and resolves with its URL once it listens. */
function startServe(args: string[]): Promise<{ child: ChildProcess; url: string; stderr: () => string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'serve', '--model', modelPath, '--port', '0', ...args],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      stderr += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) resolve({ child, url: m[1]!, stderr: () => stderr, exit });
    });
    void exit.then((code) => reject(new Error(`serve exited with ${code} before listening: ${stderr}`)));
  });
}

/** A POST whose body arrives in two parts: half now, the rest on finish(). */
function slowUpload(url: string, body: Uint8Array) {
  const req = request(url, { method: 'POST', headers: { 'content-type': 'image/png', 'content-length': body.length } });
  const response = new Promise<{ status: number; body: { top?: { label: string }[] } }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
  });
  req.write(body.subarray(0, body.length >> 1));
  return { response, finish: () => req.end(body.subarray(body.length >> 1)) };
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

describe('SIGTERM during load', () => {
  it('finishes every request in flight (uploads included), then exits 0 and refuses new connections', async () => {
    const { child, url, stderr, exit } = await startServe(['--max-wait-ms', '50']);
    // 12 concurrent uploads that have sent their headers and half their body when the signal arrives
    const uploads = Array.from({ length: 12 }, () => slowUpload(`${url}/v1/predict`, png));
    let inFlight = 0;
    for (let i = 0; i < 300 && inFlight < 13; i++) {
      // the /metrics request counts itself
      inFlight = metric(await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text(), 'tessera_http_requests_in_flight');
      if (inFlight < 13) await new Promise((r) => setTimeout(r, 10));
    }
    expect(inFlight).toBe(13);
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    expect(child.exitCode).toBe(null); // still finishing
    // the uploads complete over the next 100 ms, after the signal
    uploads.forEach((u, i) => setTimeout(u.finish, 10 * i));
    const results = await Promise.all(uploads.map((u) => u.response));
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
    for (const r of results) expect(r.body.top?.[0]?.label).toMatch(/^class \d$/);
    expect(await exit).toBe(0);
    expect(stderr()).toMatch(/SIGTERM, finishing requests in flight\n.*stopped/);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('an idle server stops at once on SIGTERM', async () => {
    const { child, url, exit } = await startServe([]);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const t0 = Date.now();
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a bad flag is one error line and exit code 2', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'serve', '--model', modelPath, '--port', '70000'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('tessera: option \'--port <n>\' argument \'70000\' is invalid. --port must be an integer from 0 to 65535, got "70000" (see --help)');
  });
});
