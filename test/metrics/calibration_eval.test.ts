/**
 * Temperature scaling and the eval metrics report against scripts/make_calibration_goldens.py
 * (PyTorch LBFGS / SciPy for T, scikit-learn for the metrics of softmax(logits / T)).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fitTemperature, temperatureNll } from '../../src/metrics/temperature.js';
import { evaluationMetrics } from '../../src/metrics/evaluation.js';

const goldens = JSON.parse(readFileSync(new URL('../fixtures/calibration_goldens.json', import.meta.url), 'utf8'));
const near = (a: number, b: number, tol = 1e-6) => expect(Math.abs(a - b)).toBeLessThanOrEqual(tol);

describe.each(goldens.temperature as any[])('temperature fit vs PyTorch LBFGS: $name', (g) => {
  it('finds the golden T (≤ 1e-4 relative) and its NLL', () => {
    const logits = Float64Array.from(g.logits.flat() as number[]);
    const fit = fitTemperature(logits, Int32Array.from(g.labels), g.classes);
    expect(Math.abs(fit.temperature - g.temperature) / g.temperature).toBeLessThanOrEqual(1e-4);
    near(fit.nllBefore, g.nll_before, 1e-9);
    near(fit.nllAfter, g.nll_after, 1e-9);
    near(temperatureNll(logits, Int32Array.from(g.labels), g.classes, g.temperature), g.nll_after, 1e-9);
    expect(fit.nllAfter).toBeLessThan(fit.nllBefore);
  });
});

describe('fitTemperature input checks', () => {
  it('names the bad input', () => {
    expect(() => fitTemperature(new Float32Array(4), Int32Array.from([0, 3]), 2)).toThrow(/label 3 of image 1/);
    expect(() => fitTemperature(new Float32Array(5), Int32Array.from([0, 1]), 2)).toThrow(/5 logits do not make 2 rows of 2/);
    expect(() => fitTemperature(new Float32Array(0), new Int32Array(0), 2)).toThrow(/at least one labelled image/);
  });
});

describe.each(goldens.report as any[])('eval metrics of softmax(logits / T) vs scikit-learn: $name', (g) => {
  const names = Array.from({ length: g.classes }, (_, k) => `class${k}`);
  const opts = { temperature: g.temperature, ...(g.threshold ? { threshold: g.threshold.threshold, positiveClass: g.threshold.positive } : {}) };
  // float32 logits, as the model gives them (the script rounded them through float32 too)
  const m = evaluationMetrics(Float32Array.from(g.logits.flat() as number[]), Int32Array.from(g.labels), names, opts);

  it('per-class, averages, balanced accuracy', () => {
    m.perClass.forEach((s, k) => {
      near(s.precision, g.precision[k]);
      near(s.recall, g.recall[k]);
      near(s.f1, g.f1[k]);
      expect(s.support).toBe(g.support[k]);
      near(s.rocAuc!, g.roc_auc[k]);
      near(s.averagePrecision!, g.average_precision[k]);
    });
    for (const avg of ['macro', 'weighted'] as const) for (const key of ['precision', 'recall', 'f1'] as const) near(m[avg][key], g[avg][key]);
    near(m.balancedAccuracy, g.balanced_accuracy);
    near(m.macro.rocAuc!, g.roc_auc_macro);
    near(m.macro.averagePrecision!, g.average_precision_macro);
  });

  it('ECE before and after the temperature', () => {
    expect(m.calibration.temperature).toBe(g.temperature);
    near(m.calibration.eceBefore!, g.ece_before);
    near(m.calibration.ece, g.ece_after);
    near(m.calibration.nll, g.nll_after, 1e-6);
    expect(m.calibration.reliability.reduce((a, b) => a + b.count, 0)).toBe(g.labels.length);
  });

  it('sensitivity and specificity of a binary task', () => {
    if (!g.threshold) return expect(m.binary).toBeUndefined();
    near(m.binary!.sensitivity, g.threshold.sensitivity);
    near(m.binary!.specificity, g.threshold.specificity);
    expect(m.binary!.positiveClass).toBe(`class${g.threshold.positive}`);
  });
});
