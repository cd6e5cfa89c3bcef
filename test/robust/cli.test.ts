/**
 * `tessera attack` end to end on a Fashion-MNIST slice with a small model trained in the test:
 * clean ≥ robust accuracy in JSON, ε = 0 changes nothing, example PNGs with an index, L2 budgets,
 * and one-line errors.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../explain/program.js';
import { trainSmallModel } from './small_model.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-attack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ckpt = join(dir, 'model.safetensors');
const common = ['--checkpoint', ckpt, '--dataset', 'fashion-mnist', '--data-dir', '/usr/share/datasets/fashion-mnist', '--threads', '1'];

beforeAll(async () => {
  (await trainSmallModel()).save(ckpt);
}, 120_000);

describe('tessera attack', () => {
  it('PGD-10 by default: JSON with clean ≥ robust accuracy at the grayscale default eps 0.1', async () => {
    const r = await runCommand(['attack', ...common, '--limit', '200', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.attack).toEqual({ method: 'pgd', norm: 'linf', eps: 0.1, alpha: 0.025, steps: 10, randomStart: true });
    expect(j.count).toBe(200);
    expect(j.cleanAccuracy).toBeGreaterThan(0.6);
    expect(j.cleanAccuracy).toBeGreaterThanOrEqual(j.robustAccuracy);
    expect(j.robustAccuracy).toBeLessThan(0.3);
    expect(j.adversarialLoss).toBeGreaterThan(j.cleanLoss);
    expect(j.maxPerturbation.linf).toBeLessThanOrEqual(0.1);
  });

  it('eps 0 leaves the accuracy unchanged', async () => {
    const r = await runCommand(['attack', ...common, '--method', 'fgsm', '--eps', '0', '--limit', '100', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.robustAccuracy).toBe(j.cleanAccuracy);
    expect(j.maxPerturbation).toEqual({ linf: 0, l2: 0 });
  });

  it('keeps an L2 attack inside its budget', async () => {
    const r = await runCommand(['attack', ...common, '--norm', 'l2', '--eps', '1', '--steps', '3', '--no-random-start', '--limit', '50', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.attack).toMatchObject({ norm: 'l2', eps: 1, steps: 3, randomStart: false });
    expect(j.maxPerturbation.l2).toBeLessThanOrEqual(1);
    expect(j.maxPerturbation.l2).toBeGreaterThan(0.9);
  });

  it('prints a summary and saves original, perturbation and adversarial PNGs with an index', async () => {
    const out = join(dir, 'examples');
    const r = await runCommand(['attack', ...common, '--method', 'fgsm', '--limit', '50', '--save-examples', out, '--save-count', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^FGSM, L∞ eps 0\.1, on 50 images of fashion-mnist test\nclean accuracy +\d+\.\d\d% +\(loss \d\.\d{4}\)\nrobust accuracy +\d+\.\d\d%/);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
    expect(index).toHaveLength(3);
    expect(readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(9);
    for (const e of index) {
      expect(e.files.adversarial).toMatch(new RegExp(`^${String(e.index).padStart(5, '0')}_true-[\\w.-]+_clean-[\\w.-]+_adv-[\\w.-]+_adversarial\\.png$`));
      const decode = async (f: string) => {
        const meta = await sharp(join(out, f)).metadata();
        expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 28, 28, 1]);
        return sharp(join(out, f)).toColourspace('b-w').raw().toBuffer();
      };
      const [orig, adv] = [await decode(e.files.original), await decode(e.files.adversarial)];
      const worst = Math.max(...adv.map((v, i) => Math.abs(v - orig[i]!)));
      expect(worst).toBeLessThanOrEqual(Math.ceil(0.1 * 255) + 1);
      expect(worst).toBeGreaterThan(20);
      // the perturbation is scaled to fill the range around mid-gray
      const delta = await decode(e.files.perturbation);
      expect(Math.max(...delta)).toBe(255);
    }
  });

  it.each([
    [['--method', 'cw'], /--method.*cw.*fgsm, pgd/],
    [['--eps', '-1'], /--eps must be a non-negative number, got "-1"/],
    [['--method', 'fgsm', '--alpha', '0.01'], /FGSM steps by eps; alpha applies to PGD and to FGSM with a random start/],
    [['--dataset', 'imagenet'], /unknown dataset 'imagenet'/],
    [['--limit', '0'], /--limit must be a positive integer, got "0"/],
  ])('rejects %j with one line', async (extra, message) => {
    const out = join(dir, 'bad');
    const r = await runCommand(['attack', ...common, '--save-examples', out, ...extra]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^tessera: /);
    expect(r.stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });
});
