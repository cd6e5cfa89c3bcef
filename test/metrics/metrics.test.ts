/** src/metrics against scikit-learn 1.2.1 on fixed predictions (scripts/make_metrics_goldens.py): ≤ 1e-6. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classificationReport, thresholdScores } from '../../src/metrics/classification.js';
import { oneVsRest } from '../../src/metrics/ranking.js';
import { expectedCalibrationError } from '../../src/metrics/calibration.js';

const goldens = JSON.parse(readFileSync(new URL('../fixtures/metrics_goldens.json', import.meta.url), 'utf8'));
const close = (a: number[], b: number[]) => {
  expect(a.length).toBe(b.length);
  a.forEach((v, i) => expect(Math.abs(v - b[i]!)).toBeLessThanOrEqual(1e-6));
};

describe.each(goldens.cases as any[])('metrics vs scikit-learn: $name', (g) => {
  const probs = Float64Array.from(g.probs.flat() as number[]);
  const labels = Int32Array.from(g.labels);
  const c = g.classes as number;
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  labels.forEach((y, i) => {
    let pred = 0;
    for (let k = 1; k < c; k++) if (probs[i * c + k]! > probs[i * c + pred]!) pred = k;
    confusion[y]![pred]!++;
  });

  it('per-class, macro, weighted, balanced accuracy', () => {
    const r = classificationReport(confusion);
    close(r.perClass.map((s) => s.precision), g.precision);
    close(r.perClass.map((s) => s.recall), g.recall);
    close(r.perClass.map((s) => s.f1), g.f1);
    expect(r.perClass.map((s) => s.support)).toEqual(g.support);
    for (const avg of ['macro', 'weighted'] as const) close([r[avg].precision, r[avg].recall, r[avg].f1], [g[avg].precision, g[avg].recall, g[avg].f1]);
    close([r.balancedAccuracy], [g.balanced_accuracy]);
  });

  it('one-vs-rest ROC-AUC, average precision and their curves', () => {
    const curves = oneVsRest(probs, labels, c);
    close(curves.map((k) => k.rocAuc), g.roc_auc);
    close(curves.map((k) => k.averagePrecision), g.average_precision);
    const macro = c > 2 ? curves.reduce((a, k) => a + k.rocAuc, 0) / c : curves[1]!.rocAuc;
    close([macro], [g.roc_auc_macro]);
    curves.forEach((k, i) => {
      close(k.fpr, g.curves[i].fpr);
      close(k.tpr, g.curves[i].tpr);
      close(k.precision, g.curves[i].precision);
      close(k.recall, g.curves[i].recall);
    });
  });

  it('expected calibration error and reliability bins', () => {
    const e = expectedCalibrationError(probs, labels, c, g.ece_bins);
    close([e.ece], [g.ece]);
    expect(e.reliability.map((b) => b.count)).toEqual(g.reliability.map((b: any) => b.count));
    e.reliability.forEach((b, i) => {
      if (b.count) close([b.accuracy!, b.confidence!], [g.reliability[i].accuracy, g.reliability[i].confidence]);
    });
  });

  it('sensitivity and specificity at a threshold (binary case)', () => {
    if (!g.threshold) return expect(c).toBeGreaterThan(2);
    const t = thresholdScores(probs, labels, c, g.threshold.positive, g.threshold.threshold);
    close([t.sensitivity, t.specificity], [g.threshold.sensitivity, g.threshold.specificity]);
  });
});
