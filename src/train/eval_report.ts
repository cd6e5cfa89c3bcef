/**
 * The evaluation section of an HTML report: per-class precision / recall / F1 / support / ROC-AUC
 * / AP, the averages, balanced accuracy, calibration (ECE before and after the temperature, its
 * binning), binary sensitivity/specificity, and the ROC, PR and reliability charts as PNGs beside
 * the page. `tessera eval --report DIR` writes it as a page of its own (eval.html); the training
 * report appends it for the run's final evaluation.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { svgToPng } from '../data/image/image_encode.js';
import type { EvaluationMetrics } from '../metrics/evaluation.js';
import { renderSvg } from './charts.js';
import { escapeHtml, htmlPage } from './report.js';
import { prChart, reliabilityChart, rocChart } from './metric_charts.js';

export interface EvaluationFigure { file: string; alt: string; caption: string }

const num = (v: number | null, digits = 4) => (v === null ? '—' : v.toFixed(digits));

/** Renders roc.png, pr.png and reliability.png into `dir` (atomically, before any page links them). */
export async function writeEvaluationCharts(dir: string, m: EvaluationMetrics, prefix = ''): Promise<EvaluationFigure[]> {
  const specs = [
    { file: `${prefix}roc.png`, spec: rocChart(m), alt: rocAlt(m), caption: 'One-vs-rest ROC curves (false against true positive rate) with their areas.' },
    { file: `${prefix}pr.png`, spec: prChart(m), alt: prAlt(m), caption: 'One-vs-rest precision-recall curves with their average precision (scikit-learn\'s, no interpolation).' },
    { file: `${prefix}reliability.png`, spec: reliabilityChart(m), alt: reliabilityAlt(m), caption: `Reliability diagram: accuracy per confidence bin (bars; dots at the bin's mean confidence) against the diagonal of perfect calibration; ${m.calibration.binning}.` },
  ];
  const pngs = await Promise.all(specs.map(async (s) => svgToPng(await renderSvg(s.spec))));
  mkdirSync(dir, { recursive: true });
  specs.forEach((s, i) => writeFileAtomic(join(dir, s.file), pngs[i]!));
  return specs.map(({ file, alt, caption }) => ({ file, alt, caption }));
}

function rocAlt(m: EvaluationMetrics): string {
  return `ROC curves, one per class; ${m.perClass.map((s) => `${s.name} AUC ${num(s.rocAuc, 3)}`).slice(0, 10).join(', ')}; macro AUC ${num(m.macro.rocAuc, 3)}.`;
}
function prAlt(m: EvaluationMetrics): string {
  return `Precision-recall curves, one per class; ${m.perClass.map((s) => `${s.name} AP ${num(s.averagePrecision, 3)}`).slice(0, 10).join(', ')}; macro AP ${num(m.macro.averagePrecision, 3)}.`;
}
function reliabilityAlt(m: EvaluationMetrics): string {
  const used = m.calibration.reliability.filter((b) => b.count > 0);
  return `Reliability diagram over ${used.length} non-empty of ${m.calibration.bins} bins; expected calibration error ${m.calibration.ece.toFixed(4)}${m.calibration.eceBefore !== undefined ? ` (before temperature scaling ${m.calibration.eceBefore.toFixed(4)})` : ''}.`;
}

/** The section's HTML; `figures` are the files writeEvaluationCharts wrote, relative to the page. */
export function evaluationSectionHtml(m: EvaluationMetrics, figures: EvaluationFigure[], heading = 'Evaluation metrics'): string {
  const rows = m.perClass.map((s) => `<tr><th scope="row">${escapeHtml(s.name)}</th><td>${num(s.precision)}</td><td>${num(s.recall)}</td><td>${num(s.f1)}</td><td>${s.support}</td><td>${num(s.rocAuc)}</td><td>${num(s.averagePrecision)}</td></tr>`);
  rows.push(`<tr><th scope="row">macro</th><td>${num(m.macro.precision)}</td><td>${num(m.macro.recall)}</td><td>${num(m.macro.f1)}</td><td></td><td>${num(m.macro.rocAuc)}</td><td>${num(m.macro.averagePrecision)}</td></tr>`);
  rows.push(`<tr><th scope="row">weighted</th><td>${num(m.weighted.precision)}</td><td>${num(m.weighted.recall)}</td><td>${num(m.weighted.f1)}</td><td>${m.perClass.reduce((a, s) => a + s.support, 0)}</td><td></td><td></td></tr>`);
  const c = m.calibration;
  const facts: [string, string][] = [
    ['Balanced accuracy', num(m.balancedAccuracy)],
    ['Expected calibration error', `${c.ece.toFixed(4)}${c.temperature !== undefined ? ` with temperature ${c.temperature.toFixed(4)} (${c.eceBefore!.toFixed(4)} without)` : ''}`],
    ['ECE binning', c.binning],
    ...(m.binary ? [[`Sensitivity / specificity at p(${m.binary.positiveClass}) ≥ ${m.binary.threshold}`, `${num(m.binary.sensitivity)} / ${num(m.binary.specificity)} (TP ${m.binary.tp}, FN ${m.binary.fn}, TN ${m.binary.tn}, FP ${m.binary.fp})`] as [string, string]] : []),
  ];
  return `<section aria-labelledby="evaluation-metrics">
<h2 id="evaluation-metrics">${escapeHtml(heading)}</h2>
<dl>
${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('\n')}
</dl>
<table>
<caption>Per class (one vs rest for ROC-AUC and AP)</caption>
<thead><tr><th scope="col">Class</th><th scope="col">Precision</th><th scope="col">Recall</th><th scope="col">F1</th><th scope="col">Support</th><th scope="col">ROC-AUC</th><th scope="col">AP</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
${figures.map((f) => `<figure>\n<img src="${escapeHtml(f.file)}" alt="${escapeHtml(f.alt)}">\n<figcaption>${escapeHtml(f.caption)}</figcaption>\n</figure>`).join('\n')}
</section>`;
}

/** `tessera eval --report DIR`: DIR/eval.html with the section and its charts. */
export async function writeEvaluationReport(dir: string, title: string, facts: [string, string][], m: EvaluationMetrics): Promise<string> {
  const figures = await writeEvaluationCharts(dir, m);
  const html = join(dir, 'eval.html');
  writeFileAtomic(html, htmlPage(title, `<h1>${escapeHtml(title)}</h1>
<dl>
${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('\n')}
</dl>
${evaluationSectionHtml(m, figures)}
`));
  return html;
}
