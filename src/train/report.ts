/**
 * The training report, regenerated after every epoch in the run directory: loss.png,
 * accuracy.png, confusion.png and report.html (title, summary, charts with alt text, metrics
 * table, config table), and the images the objective's evaluation wrote (MAE's reconstruction
 * grid) after the charts. Charts are Vega-Lite rendered headless to SVG, then rasterised by sharp.
 * Every file is written atomically, PNGs before the page, so a reader never sees a page whose
 * charts are missing or half written.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { svgToPng } from '../data/image/image_encode.js';
import type { EvaluationMetrics } from '../metrics/evaluation.js';
import { evaluationSectionHtml, writeEvaluationCharts } from './eval_report.js';
import type { ReportFigure } from './objectives/objective.js';
import { accuracyChart, confusionChart, confusionClasses, type EpochMetrics, lossChart, renderSvg } from './charts.js';

export type { EpochMetrics } from './charts.js';

export interface ReportInput {
  runName: string;
  model: string;
  classNames: string[];
  metrics: EpochMetrics[];
  /** [true][pred] counts from the latest evaluation. */
  confusion?: number[][];
  config?: Record<string, unknown>;
  /** The final evaluation's metrics (src/metrics): a section with its own charts. */
  evaluation?: EvaluationMetrics;
  /** Images already in the run directory that the objective's evaluation wrote (MAE's reconstructions), shown after the charts. */
  figures?: ReportFigure[];
}

interface Chart {
  file: string;
  svg: string;
  alt: string;
  caption: string;
}

export async function writeReport(runDir: string, input: ReportInput): Promise<{ html: string; pngs: string[] }> {
  validate(input);
  const metrics = [...input.metrics].sort((a, b) => a.epoch - b.epoch);
  const [loss, accuracy, confusion] = await Promise.all([
    renderSvg(lossChart(metrics)), renderSvg(accuracyChart(metrics)), renderSvg(confusionChart(input.classNames, input.confusion)),
  ]);
  const charts: Chart[] = [
    { file: 'loss.png', svg: loss, alt: lossAlt(metrics), caption: 'Training and evaluation loss per epoch.' },
    { file: 'accuracy.png', svg: accuracy, alt: accuracyAlt(metrics), caption: 'Evaluation accuracy per epoch.' },
    { file: 'confusion.png', svg: confusion, alt: confusionAlt(input.classNames, input.confusion), caption: 'Confusion matrix of the latest evaluation: rows are true classes, columns predictions; cells show counts, shaded by share of the true class.' },
  ];
  const pngBytes = await Promise.all(charts.map((c) => svgToPng(c.svg)));
  mkdirSync(runDir, { recursive: true });
  const pngs = charts.map((c, i) => {
    const path = join(runDir, c.file);
    writeFileAtomic(path, pngBytes[i]!);
    return path;
  });
  const extra = input.evaluation ? evaluationSectionHtml(input.evaluation, await writeEvaluationCharts(runDir, input.evaluation), 'Final evaluation') : '';
  const html = join(runDir, 'report.html');
  writeFileAtomic(html, renderHtml(input, metrics, charts, extra));
  return { html, pngs };
}

function validate(input: ReportInput): void {
  const n = input.classNames.length;
  input.metrics.forEach((m, i) => {
    if (!Number.isFinite(m.epoch)) throw new Error(`writeReport: metrics[${i}].epoch must be a finite number, got ${m.epoch}`);
  });
  if (!input.confusion) return;
  if (input.confusion.length !== n) throw new Error(`writeReport: confusion has ${input.confusion.length} rows, expected ${n} (one per class name)`);
  input.confusion.forEach((row, t) => {
    if (row.length !== n) throw new Error(`writeReport: confusion[${t}] has ${row.length} columns, expected ${n} (one per class name)`);
    row.forEach((v, p) => {
      if (!(Number.isFinite(v) && v >= 0)) throw new Error(`writeReport: confusion[${t}][${p}] must be a non-negative count, got ${v}`);
    });
  });
}

// ---- formatting ------------------------------------------------------------------------------

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
const fixed = (digits: number) => (v: number) => v.toFixed(digits);

/** Metrics table columns, in order; optional ones appear only when some epoch has them. */
const COLUMNS: { key: keyof EpochMetrics; label: string; format: (v: number) => string }[] = [
  { key: 'epoch', label: 'Epoch', format: String },
  { key: 'step', label: 'Step', format: String },
  { key: 'lr', label: 'Learning rate', format: (v) => v.toExponential(2) },
  { key: 'train_loss', label: 'Train loss', format: fixed(4) },
  { key: 'eval_loss', label: 'Eval loss', format: fixed(4) },
  { key: 'eval_top1', label: 'Eval top-1', format: pct },
  { key: 'eval_top5', label: 'Eval top-5', format: pct },
  { key: 'ema_top1', label: 'EMA top-1', format: pct },
  { key: 'robust_top1', label: 'Robust top-1', format: pct },
  { key: 'images_per_second', label: 'Images/s', format: fixed(1) },
  { key: 'seconds', label: 'Seconds', format: fixed(1) },
];

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A standalone HTML page in the reports' style (the training report, eval --report) around `main`'s content. */
export function htmlPage(title: string, main: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #111; line-height: 1.5; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
thead th, caption { background: #f3f3f3; }
caption { font-weight: bold; padding: 0.25rem; text-align: left; }
.config td, .config th { text-align: left; font-family: ui-monospace, monospace; }
img { max-width: 100%; height: auto; }
img.pixels { image-rendering: pixelated; }
figure { margin: 1.5rem 0; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
</style>
</head>
<body>
<main>
${main}</main>
</body>
</html>
`;
}

/** Nested config objects become dotted keys (`optimizer.lr`); arrays and scalars print as JSON. */
function flattenConfig(obj: Record<string, unknown>, prefix = ''): [string, string][] {
  const rows: [string, string][] = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) rows.push(...flattenConfig(v as Record<string, unknown>, key));
    else rows.push([key, typeof v === 'string' ? v : JSON.stringify(v)]);
  }
  return rows;
}

// ---- alt text: what a sighted reader would take from each chart ------------------------------

function lossAlt(metrics: EpochMetrics[]): string {
  const last = metrics.at(-1);
  if (!last) return 'Loss chart: no epochs finished yet.';
  const first = metrics[0]!;
  const evalPart = finite(last.eval_loss) ? `, eval loss ${last.eval_loss.toFixed(4)}` : '';
  return `Line chart of loss over epochs ${first.epoch} to ${last.epoch}: train loss went from ${first.train_loss.toFixed(4)} to ${last.train_loss.toFixed(4)}${evalPart} at the last epoch.`;
}

function accuracyAlt(metrics: EpochMetrics[]): string {
  const evals = metrics.filter((m) => finite(m.eval_top1));
  const last = evals.at(-1);
  if (!last) return 'Accuracy chart: no evaluation results yet.';
  const best = evals.reduce((a, b) => (b.eval_top1! > a.eval_top1! ? b : a));
  const extra = [
    finite(last.eval_top5) ? `top-5 ${pct(last.eval_top5)}` : '',
    finite(last.ema_top1) ? `EMA top-1 ${pct(last.ema_top1)}` : '',
    finite(last.robust_top1) ? `robust top-1 ${pct(last.robust_top1)}` : '',
  ].filter(Boolean);
  return `Line chart of evaluation accuracy over epochs: at epoch ${last.epoch} top-1 is ${pct(last.eval_top1!)}${extra.length ? ` (${extra.join(', ')})` : ''}; best top-1 ${pct(best.eval_top1!)} at epoch ${best.epoch}.`;
}

function confusionAlt(classNames: string[], confusion?: number[][]): string {
  if (!confusion) return 'Confusion matrix: no evaluation results yet.';
  let total = 0, correct = 0, worst = { t: -1, p: -1, count: 0 };
  confusion.forEach((row, t) => row.forEach((count, p) => {
    total += count;
    if (t === p) correct += count;
    else if (count > worst.count) worst = { t, p, count };
  }));
  const shown = confusionClasses(confusion).length;
  const scope = shown < classNames.length ? `the ${shown} most-confused of ${classNames.length} classes` : `${classNames.length} classes`;
  const confused = worst.count > 0 ? `; most frequent confusion: ${classNames[worst.t]} predicted as ${classNames[worst.p]} (${worst.count} images)` : '';
  return `Heatmap of true against predicted class for ${scope}, ${total} images, ${total ? pct(correct / total) : 'n/a'} on the diagonal${confused}.`;
}

// ---- page ------------------------------------------------------------------------------------

/** The SVG's own size, used as the <img> display size so the 2× PNG renders crisply. */
function svgSize(svg: string): { width: number; height: number } | undefined {
  const m = /^<svg[^>]*?\swidth="([\d.]+)"[^>]*?\sheight="([\d.]+)"/.exec(svg);
  return m ? { width: Math.round(Number(m[1])), height: Math.round(Number(m[2])) } : undefined;
}

function renderHtml(input: ReportInput, metrics: EpochMetrics[], charts: Chart[], evaluationSection = ''): string {
  const title = `${input.runName} — training report`;
  const columns = COLUMNS.filter((c) => metrics.some((m) => finite(m[c.key])));
  const metricRows = metrics.map((m) => `<tr>${columns.map((c, i) => {
    const v = m[c.key];
    const text = finite(v) ? c.format(v) : '—';
    return i === 0 ? `<th scope="row">${text}</th>` : `<td>${text}</td>`;
  }).join('')}</tr>`);
  const last = metrics.at(-1);
  const evals = metrics.filter((m) => finite(m.eval_top1));
  const best = evals.length ? evals.reduce((a, b) => (b.eval_top1! > a.eval_top1! ? b : a)) : undefined;
  const summary: [string, string][] = [
    ['Model', input.model],
    ['Classes', String(input.classNames.length)],
    ['Epochs completed', last ? String(last.epoch) : '0'],
    ...(last ? [['Latest train loss', last.train_loss.toFixed(4)] as [string, string]] : []),
    ...(best ? [['Best eval top-1', `${pct(best.eval_top1!)} (epoch ${best.epoch})`] as [string, string]] : []),
    ['Updated', new Date().toISOString()],
  ];
  const figureHtml = charts.map((c) => {
    const size = svgSize(c.svg);
    const dims = size ? ` width="${size.width}" height="${size.height}"` : '';
    return `<figure>\n<img src="${c.file}" alt="${escapeHtml(c.alt)}"${dims}>\n<figcaption>${escapeHtml(c.caption)}</figcaption>\n</figure>`;
  });
  for (const f of input.figures ?? []) {
    figureHtml.push(`<figure>\n<img src="${escapeHtml(f.file)}" alt="${escapeHtml(f.alt)}" width="${2 * f.width}" height="${2 * f.height}" class="pixels">\n<figcaption>${escapeHtml(f.caption)}</figcaption>\n</figure>`);
  }
  const configRows = input.config ? flattenConfig(input.config) : [];
  return htmlPage(title, `<h1>${escapeHtml(title)}</h1>
<section aria-labelledby="summary">
<h2 id="summary">Summary</h2>
<dl>
${summary.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('\n')}
</dl>
</section>
<section aria-labelledby="charts">
<h2 id="charts">Charts</h2>
${figureHtml.join('\n')}
</section>
<section aria-labelledby="metrics">
<h2 id="metrics">Metrics</h2>
<table>
<caption>Per-epoch metrics</caption>
<thead><tr>${columns.map((c) => `<th scope="col">${escapeHtml(c.label)}</th>`).join('')}</tr></thead>
<tbody>
${metricRows.join('\n')}
</tbody>
</table>
</section>
${evaluationSection}
<section aria-labelledby="config">
<h2 id="config">Configuration</h2>
${configRows.length ? `<table class="config">
<caption>Run configuration</caption>
<thead><tr><th scope="col">Key</th><th scope="col">Value</th></tr></thead>
<tbody>
${configRows.map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n')}
</tbody>
</table>` : '<p>No configuration recorded.</p>'}
</section>
`);
}
