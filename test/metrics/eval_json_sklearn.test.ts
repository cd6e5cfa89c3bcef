/**
 * `tessera eval --json` on a fixed tiny model and data against scikit-learn: a linear classifier
 * written as an ONNX graph with a temperature in its metadata, on the first 300 Fashion-MNIST test
 * images (scripts/make_eval_fixture.py computed its logits in NumPy and the metrics with sklearn).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

const expected = JSON.parse(readFileSync(fixturePath('eval_linear/expected.json'), 'utf8'));
const near = (a: number, b: number, tol = 1e-6) => expect(Math.abs(a - b), `${a} vs ${b}`).toBeLessThanOrEqual(tol);

describe('eval --json vs scikit-learn on a fixed linear model', () => {
  it('every metric, ECE before/after the temperature, and the loss', async () => {
    const r = await runCli(['eval', '--checkpoint', fixturePath('eval_linear/linear.onnx'), '--dataset', 'fashion-mnist', '--limit', String(expected.limit), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const m = out.metrics;
    expect(out.count).toBe(expected.limit);
    near(out.top1, expected.top1, 1e-12);
    // the network's own loss (the graph's logits multiplied back by T), and the loss with T
    near(out.loss, expected.loss, 1e-5);
    near(m.calibration.nll, expected.nll_with_temperature, 1e-5);
    m.perClass.forEach((c: any, k: number) => {
      near(c.precision, expected.precision[k]);
      near(c.recall, expected.recall[k]);
      near(c.f1, expected.f1[k]);
      expect(c.support).toBe(expected.support[k]);
      near(c.rocAuc, expected.roc_auc[k]);
      near(c.averagePrecision, expected.average_precision[k]);
    });
    for (const avg of ['macro', 'weighted']) for (const key of ['precision', 'recall', 'f1']) near(m[avg][key], expected[avg][key]);
    near(m.balancedAccuracy, expected.balanced_accuracy);
    near(m.macro.rocAuc, expected.roc_auc_macro);
    expect(m.calibration.temperature).toBe(expected.temperature);
    expect(m.calibration.bins).toBe(expected.ece_bins);
    near(m.calibration.eceBefore, expected.ece_before);
    near(m.calibration.ece, expected.ece_after);
    expect(m.binary).toBeUndefined();
  }, 60_000);
});
