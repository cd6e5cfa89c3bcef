/**
 * The web page in Debian's headless Chromium (playwright-core): an uploaded image gets the same
 * top-1 as `tessera predict` on the command line, both when the server classifies it and when
 * the page runs the same .onnx file itself with onnxruntime-web.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { loadImageForModel } from '../../src/data/image/image.js';
import { evalTransformOf } from '../../src/export/metadata.js';
import { loadServedModel } from '../../src/serve/model_source.js';
import { createServer, type TesseraServer } from '../../src/serve/server.js';
import { runCli } from '../helpers/cli.js';
import { trainedCheckpoint } from '../export/trained.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-browser-'));
let server: TesseraServer | undefined;
let browser: BrowserContext | undefined;
let page: Page;
let url: string;
/** image file → top-1 label from `tessera predict` */
const cliTop1 = new Map<string, string>();
let small: string; // a 28×28 Fashion-MNIST PNG
let large: string; // another one enlarged to 150×150 PNG (the page shrinks it)
let photo: string; // a third as a 150×150 JPEG

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeAll(async () => {
  const checkpoint = await trainedCheckpoint(dir);
  const test = await loadBuiltinDataset('fashion-mnist', 'test');
  const image = (i: number) => sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } });
  small = join(dir, 'trouser.png');
  large = join(dir, 'pullover.png');
  photo = join(dir, 'ankle-boot.jpg');
  await image(2).png().toFile(small);
  await image(1).resize(150, 150, { kernel: 'cubic' }).png().toFile(large);
  await image(0).resize(150, 150, { kernel: 'cubic' }).jpeg({ quality: 92 }).toFile(photo);

  const cli = await runCli(['predict', '--checkpoint', checkpoint, small, large, photo, '--json']);
  expect(cli.code, cli.stderr).toBe(0);
  for (const r of JSON.parse(cli.stdout) as { image: string; top: { label: string }[] }[]) cliTop1.set(r.image, r.top[0]!.label);

  server = await createServer({ model: await loadServedModel({ checkpoint }) });
  url = await server.listen(0);
  browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1000, height: 640 },
  });
  page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('model-info')?.textContent?.startsWith('vit_tiny_patch4_28 · 10 labels · 1×28×28 input'));
}, 300_000);

/** Uploads `file` (or re-runs the current one after a mode switch) and returns the status once done in `mode`. */
async function classified(mode: 'server' | 'browser', upload?: string) {
  if (upload) await page.getByLabel(/drop an image here/i).setInputFiles(upload);
  const status = page.getByRole('status');
  await expect.poll(async () => `${await status.getAttribute('data-state')}/${await status.getAttribute('data-mode')}`, { timeout: 60_000 })
    .toBe(`done/${mode}`);
  const rows = page.locator('#results li');
  return {
    top1: await status.getAttribute('data-top1'),
    labels: await rows.evaluateAll((li) => li.map((e) => (e as HTMLElement).dataset.label)),
    percents: await rows.locator('.pct').allTextContents(),
  };
}

describe('the web page', () => {
  it('server mode: the uploaded image gets tessera predict\'s top-1, with five bars', async () => {
    for (const file of [small, large, photo]) {
      const r = await classified('server', file);
      expect(r.top1, file).toBe(cliTop1.get(file));
      expect(r.labels).toHaveLength(5);
      expect(r.labels[0]).toBe(r.top1);
      // the served checkpoint carries attention_map, so the overlay is drawn over the preview
      await expect.poll(() => page.locator('#attention-overlay').isVisible()).toBe(true);
    }
    await page.getByRole('checkbox', { name: 'Show attention' }).uncheck();
    expect(await page.locator('#attention-overlay').isVisible()).toBe(false);
    await page.getByRole('checkbox', { name: 'Show attention' }).check();
    await expect.poll(() => page.locator('#attention-overlay').isVisible()).toBe(true);
  });

  it('in-browser mode (onnxruntime-web, wasm) gives the same top-1, and for PNGs the same probabilities', async () => {
    const switchControl = page.getByRole('switch', { name: 'Run in this browser' });
    for (const file of [small, large, photo]) {
      if (await switchControl.isChecked()) await switchControl.uncheck();
      const onServer = await classified('server', file);
      await switchControl.check();
      const inBrowser = await classified('browser');
      expect(inBrowser.top1, file).toBe(cliTop1.get(file));
      expect(await page.locator('#attention-overlay').isVisible()).toBe(true); // read from onnxruntime-web's attention_map
      // sharp shrinks JPEGs while decoding them (libjpeg's DCT scaling), which a browser cannot do
      if (file !== photo) expect(inBrowser.percents).toEqual(onServer.percents);
    }
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true); // wasm threads allowed
  });

  it('preprocesses a large PNG within two levels of the server (browser decode included)', async () => {
    await page.getByLabel(/drop an image here/i).setInputFiles(large);
    const inPage = await page.evaluate(async () => {
      const input = document.getElementById('file-input') as HTMLInputElement;
      return (window as unknown as { tessera: { preprocessFile(f: File): Promise<number[]> } }).tessera.preprocessFile(input.files![0]!);
    });
    const info = await (await fetch(`${url}/v1/model`)).json() as { std: number[] };
    const onServer = await loadImageForModel(large, evalTransformOf(server!.model.meta));
    const levels = inPage.map((v, i) => Math.abs(v - onServer[i]!) * info.std[0]! * 255);
    expect(Math.max(...levels)).toBeLessThanOrEqual(2.0001);
  });

  it('renders (screenshot)', async () => {
    const shot = join(dir, 'serve.png');
    await page.screenshot({ path: shot });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
  });
});
