/**
 * Charts of an evaluation's metrics (src/metrics/evaluation.ts) as Vega-Lite specs: one-vs-rest
 * ROC and precision-recall curves per class, and the reliability diagram of the calibration
 * bins. `tessera eval --report` and the training report's final evaluation draw them.
 */
import type { Config, TopLevelSpec } from 'vega-lite';
import type { EvaluationMetrics, CurvePoints } from '../metrics/evaluation.js';

const CONFIG: Config = {
  font: 'DejaVu Sans, sans-serif', background: 'white', padding: 16,
  title: { fontSize: 15, anchor: 'start' }, axis: { labelFontSize: 12, titleFontSize: 12 }, legend: { labelFontSize: 12, titleFontSize: 12 },
};
const SIZE = { width: 360, height: 320 };

/** Curves past this many classes show the first ones only (legible colours), and say so in the title. */
export const CURVE_MAX_CLASSES = 10;
/** Points per curve drawn: a 10 000-image curve is thinned evenly, keeping its ends (the areas are computed on all points). */
export const CURVE_MAX_POINTS = 300;

function thin(c: CurvePoints): CurvePoints {
  const n = c.x.length;
  if (n <= CURVE_MAX_POINTS) return c;
  const keep = Array.from({ length: CURVE_MAX_POINTS }, (_, i) => Math.round((i * (n - 1)) / (CURVE_MAX_POINTS - 1)));
  return { x: keep.map((i) => c.x[i]!), y: keep.map((i) => c.y[i]!) };
}

function curveChart(m: EvaluationMetrics, kind: 'roc' | 'pr'): TopLevelSpec {
  // a binary task: the positive class's curve only (the other is its mirror)
  const classes = m.binary ? [m.binary.positiveIndex] : m.perClass.map((_, k) => k).slice(0, CURVE_MAX_CLASSES);
  const rows: { x: number; y: number; order: number; class: string }[] = [];
  const names: string[] = [];
  for (const k of classes) {
    const s = m.perClass[k]!;
    const area = kind === 'roc' ? s.rocAuc : s.averagePrecision;
    if (area === null) continue;
    const name = `${s.name} (${kind === 'roc' ? 'AUC' : 'AP'} ${area.toFixed(3)})`;
    names.push(name);
    const c = thin(m.curves[k]![kind]);
    c.x.forEach((x, i) => rows.push({ x, y: c.y[i]!, order: i, class: name }));
  }
  const more = !m.binary && m.perClass.length > CURVE_MAX_CLASSES ? ` (first ${CURVE_MAX_CLASSES} of ${m.perClass.length} classes)` : '';
  const [title, xt, yt] = kind === 'roc' ? ['ROC, one vs rest', 'false positive rate', 'true positive rate'] : ['Precision-recall, one vs rest', 'recall', 'precision'];
  return {
    title: title + more, ...SIZE, config: CONFIG,
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 2, interpolate: kind === 'roc' ? 'linear' : 'step-after' },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xt, scale: { domain: [0, 1] } },
      y: { field: 'y', type: 'quantitative', title: yt, scale: { domain: [0, 1] } },
      order: { field: 'order', type: 'quantitative' },
      // class order, not alphabetical; full names (areas included)
      color: { field: 'class', type: 'nominal', title: null, scale: { domain: names }, legend: { orient: 'bottom', columns: 2, labelLimit: 300 } },
    },
  };
}

export const rocChart = (m: EvaluationMetrics) => curveChart(m, 'roc');
export const prChart = (m: EvaluationMetrics) => curveChart(m, 'pr');

/** Accuracy against mean confidence per bin (bars), the diagonal of perfect calibration, counts in the tooltip. */
export function reliabilityChart(m: EvaluationMetrics): TopLevelSpec {
  const bins = m.calibration.reliability.filter((b) => b.count > 0).map((b) => ({ lower: b.lower, upper: b.upper, accuracy: b.accuracy, confidence: b.confidence, count: b.count }));
  const t = m.calibration.temperature;
  return {
    title: `Reliability (ECE ${m.calibration.ece.toFixed(4)}${t !== undefined ? `, T = ${t.toFixed(3)}` : ''})`, ...SIZE, config: CONFIG,
    layer: [
      {
        data: { values: bins },
        mark: { type: 'rect', color: '#4c78a8', opacity: 0.8 },
        encoding: {
          x: { field: 'lower', type: 'quantitative', title: 'confidence (top-class probability)', scale: { domain: [0, 1] } },
          x2: { field: 'upper' },
          y: { field: 'accuracy', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] } },
          y2: { datum: 0 },
        },
      },
      { data: { values: bins }, mark: { type: 'point', color: '#e45756', filled: true }, encoding: { x: { field: 'confidence', type: 'quantitative' }, y: { field: 'accuracy', type: 'quantitative' } } },
      { data: { values: [{ a: 0 }, { a: 1 }] }, mark: { type: 'line', color: '#888', strokeDash: [4, 4] }, encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'a', type: 'quantitative' } } },
    ],
  };
}
