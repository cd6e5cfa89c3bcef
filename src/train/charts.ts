/**
 * The training report's charts as Vega-Lite specs (pure functions of the metrics), and one
 * headless renderer: Vega-Lite → Vega → SVG via `View.toSVG()`, which needs no canvas.
 */
import { parse, View } from 'vega';
import { compile, type Config, type TopLevelSpec } from 'vega-lite';
import type { EpochRecord } from './run_dir.js';

/** The per-epoch record the charts read (one line of metrics.jsonl). */
export type EpochMetrics = EpochRecord;

/** Larger confusion matrices show only the most-confused classes, so the chart stays legible. */
export const CONFUSION_MAX_CLASSES = 40;

const CONFIG: Config = {
  font: 'DejaVu Sans, sans-serif',
  background: 'white',
  // Without a canvas Vega estimates text widths, and DejaVu runs wider than the estimate.
  padding: 16,
  title: { fontSize: 15, anchor: 'start' },
  axis: { labelFontSize: 12, titleFontSize: 12 },
  legend: { labelFontSize: 12, titleFontSize: 12 },
};

const LINE_SIZE = { width: 520, height: 280 };

type SeriesPoint = { epoch: number; series: string; value: number };

/** Long-format rows (one per epoch and series), skipping values a run did not measure. */
function seriesRows(metrics: readonly EpochMetrics[], series: readonly [keyof EpochMetrics, string][]): SeriesPoint[] {
  const rows: SeriesPoint[] = [];
  for (const m of metrics) {
    for (const [key, name] of series) {
      const v = m[key];
      if (typeof v === 'number' && Number.isFinite(v)) rows.push({ epoch: m.epoch, series: name, value: v });
    }
  }
  return rows;
}

function placeholder(title: string, message: string): TopLevelSpec {
  return {
    title, ...LINE_SIZE, config: CONFIG,
    data: { values: [{ message }] },
    mark: { type: 'text', fontSize: 14, color: '#555' },
    encoding: { text: { field: 'message' } },
  };
}

function lineChart(title: string, rows: SeriesPoint[], seriesNames: string[], y: { title: string; percent?: boolean }): TopLevelSpec {
  return {
    title, ...LINE_SIZE, config: CONFIG,
    data: { values: rows },
    mark: { type: 'line', point: { size: 50 }, strokeWidth: 2 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', scale: { zero: false, nice: false }, axis: { tickMinStep: 1, format: 'd' } },
      y: {
        field: 'value', type: 'quantitative', title: y.title,
        ...(y.percent ? { axis: { format: '.0%' }, scale: { zero: false, domainMax: 1 } } : { scale: { zero: false } }),
      },
      // Series names come from a fixed list so a series keeps its colour as others appear.
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: seriesNames }, legend: { orient: 'bottom', direction: 'horizontal' } },
    },
  };
}

export function lossChart(metrics: readonly EpochMetrics[]): TopLevelSpec {
  const series: [keyof EpochMetrics, string][] = [['train_loss', 'train'], ['eval_loss', 'eval']];
  const rows = seriesRows(metrics, series);
  if (rows.length === 0) return placeholder('Loss', 'No epochs finished yet');
  const present = series.map(([, n]) => n).filter((n) => rows.some((r) => r.series === n));
  return lineChart('Loss', rows, present, { title: 'cross-entropy loss' });
}

export function accuracyChart(metrics: readonly EpochMetrics[]): TopLevelSpec {
  const series: [keyof EpochMetrics, string][] = [['eval_top1', 'eval top-1'], ['eval_top5', 'eval top-5'], ['ema_top1', 'EMA top-1'], ['robust_top1', 'robust top-1']];
  const rows = seriesRows(metrics, series);
  if (rows.length === 0) return placeholder('Accuracy', 'No evaluation results yet');
  const present = series.map(([, n]) => n).filter((n) => rows.some((r) => r.series === n));
  return lineChart('Accuracy', rows, present, { title: 'accuracy', percent: true });
}

/** Indices of the classes to show: all of them, or the `max` with the most errors (row + column), in class order. */
export function confusionClasses(confusion: readonly (readonly number[])[], max = CONFUSION_MAX_CLASSES): number[] {
  const n = confusion.length;
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= max) return all;
  const errors = all.map((i) => {
    let e = 0;
    for (let j = 0; j < n; j++) if (j !== i) e += confusion[i]![j]! + confusion[j]![i]!;
    return e;
  });
  return all.sort((a, b) => errors[b]! - errors[a]! || a - b).slice(0, max).sort((a, b) => a - b);
}

/** Heatmap of `confusion[true][pred]`: colour is the share of the true class (so rare classes stay visible), text the count. */
export function confusionChart(classNames: readonly string[], confusion?: readonly (readonly number[])[]): TopLevelSpec {
  if (!confusion) return placeholder('Confusion matrix', 'No evaluation results yet');
  const shown = confusionClasses(confusion);
  // Axis categories are names, so repeated names get their index to stay distinct.
  const unique = new Set(classNames).size === classNames.length;
  const label = (i: number) => (unique ? classNames[i]! : `${i}: ${classNames[i]}`);
  const values = [];
  for (const t of shown) {
    const total = confusion[t]!.reduce((a, b) => a + b, 0);
    for (const p of shown) {
      const count = confusion[t]![p]!;
      values.push({ truth: label(t), predicted: label(p), count, share: total ? count / total : 0 });
    }
  }
  const order = shown.map(label);
  const cell = Math.max(12, Math.min(40, Math.floor(480 / shown.length)));
  const labelFontSize = Math.min(12, cell - 2);
  const title = shown.length < classNames.length ? `Confusion matrix (${shown.length} most-confused of ${classNames.length} classes)` : 'Confusion matrix';
  return {
    title, width: cell * shown.length, height: cell * shown.length, config: CONFIG,
    data: { values },
    encoding: {
      // Narrow cells get vertical labels, so each needs only its font height.
      x: { field: 'predicted', type: 'nominal', sort: order, title: 'predicted class', axis: { labelAngle: cell >= 28 ? -40 : -90, labelAlign: 'right', labelLimit: 140, labelFontSize } },
      y: { field: 'truth', type: 'nominal', sort: order, title: 'true class', axis: { labelLimit: 140, labelFontSize } },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5 },
        encoding: { color: { field: 'share', type: 'quantitative', title: 'share of true class', scale: { scheme: 'blues', domain: [0, 1] }, legend: { format: '.0%', titleLimit: 400 } } },
      },
      // Counts only where a cell is big enough to read them.
      ...(cell < 28 ? [] : [{
        mark: { type: 'text' as const, fontSize: cell >= 36 ? 11 : 9 },
        encoding: {
          text: { field: 'count', type: 'quantitative' as const },
          color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: 'black' },
        },
      }]),
    ],
  };
}

/** Renders a Vega-Lite spec to a standalone SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
