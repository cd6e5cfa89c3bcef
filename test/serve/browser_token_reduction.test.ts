/**
 * The web page with token-reducing models (issue #21), in Debian's headless Chromium: a checkpoint
 * served with token merging (`serve --model-kwargs tome_r=4`) and a DynamicViT checkpoint (ρ = 0.5:
 * top-k selection in the graph). The page runs the same .onnx itself with onnxruntime-web, whose
 * graph holds the merge (TopK, GatherElements, ScatterElements) and the selection; its top-1 and
 * percentages must be the server's. Neither model has an attention over a patch grid, so the page
 * must offer no attention overlay rather than fail.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { loadServedModel, type ModelSource } from '../../src/serve/model_source.js';
import { createServer, type TesseraServer } from '../../src/serve/server.js';
import { trainedCheckpoint } from '../export/trained.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-browser-reduce-'));
let browser: BrowserContext | undefined;
const servers: TesseraServer[] = [];
const files: string[] = [];
let plain: string;
let pruning: string;

afterAll(async () => {
  await browser?.close();
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeAll(async () => {
  plain = await trainedCheckpoint(dir);
  const { model, meta } = loadCheckpoint(plain);
  const dyn = new VisionTransformer({ ...(model.config as VisionTransformer['config']), dynamicKeep: 0.5 });
  const trained = new Map(model.namedState());
  for (const [k, p] of dyn.namedState()) if (trained.has(k)) p.data.set(trained.get(k)!.data);
  pruning = join(dir, 'dynamicvit.safetensors');
  saveCheckpoint(pruning, dyn, { ...meta, config: { ...dyn.config } });
  const test = await loadBuiltinDataset('fashion-mnist', 'test');
  for (const i of [0, 2]) {
    const f = join(dir, `img${i}.png`);
    await sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(f);
    files.push(f);
  }
  browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1000, height: 640 },
  });
}, 300_000);

async function openPage(src: ModelSource): Promise<Page> {
  const server = await createServer({ model: await loadServedModel(src, { threads: 1 }) });
  servers.push(server);
  const page = await browser!.newPage();
  await page.goto(await server.listen(0));
  await page.waitForFunction(() => document.getElementById('model-info')?.textContent?.startsWith('vit_tiny_patch4_28 · 10 labels'));
  return page;
}

async function classified(page: Page, mode: 'server' | 'browser', upload?: string) {
  if (upload) await page.getByLabel(/drop an image here/i).setInputFiles(upload);
  const status = page.getByRole('status');
  await expect.poll(async () => `${await status.getAttribute('data-state')}/${await status.getAttribute('data-mode')}`, { timeout: 60_000 })
    .toBe(`done/${mode}`);
  return { top1: await status.getAttribute('data-top1'), percents: await page.locator('#results li .pct').allTextContents() };
}

describe('the web page with token-reducing models', () => {
  for (const [name, src] of [
    ['ToMe (serve --model-kwargs tome_r=4)', () => ({ checkpoint: plain, modelKwargs: { tome_r: 4 } })],
    ['DynamicViT ρ = 0.5', () => ({ checkpoint: pruning })],
  ] as const) {
    it(`${name}: onnxruntime-web in the page gives the server's top-1 and percentages; no attention overlay`, async () => {
      const page = await openPage(src());
      const switchControl = page.getByRole('switch', { name: 'Run in this browser' });
      for (const file of files) {
        if (await switchControl.isChecked()) await switchControl.uncheck();
        const onServer = await classified(page, 'server', file);
        expect(onServer.percents).toHaveLength(5);
        await switchControl.check();
        const inBrowser = await classified(page, 'browser');
        expect(inBrowser.top1, file).toBe(onServer.top1);
        expect(inBrowser.percents).toEqual(onServer.percents);
      }
      expect(await page.getByRole('checkbox', { name: 'Show attention' }).isDisabled()).toBe(true);
      expect(await page.locator('#attention-overlay').isVisible()).toBe(false);
      await page.close();
    }, 40_000);
  }
});
