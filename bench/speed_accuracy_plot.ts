/**
 * The speed-for-accuracy chart of token reduction (issue #21) from bench/token_reduction_fm.ts's
 * JSON: images/s against test top-1, one point per setting (the unpruned model, ToMe at each r,
 * DynamicViT at each ρ), each method's points joined in order of its setting and labelled with
 * it. Vega-Lite, rendered headless as the training report's charts are (src/train/charts.ts), to
 * an SVG and a PNG.
 *
 *   npx tsx bench/speed_accuracy_plot.ts results.json [--batch 32] [--out docs/images/speed_accuracy_fm]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { TopLevelSpec } from 'vega-lite';
import { svgToPng } from '../src/data/image/image_encode.js';
import { renderSvg } from '../src/train/charts.js';
import type { SpeedAccuracyRow } from './token_reduction_fm.js';

interface Report { model: string; images: number; threads: number; date: string; machine: string; loadAverage: { start: number; end: number }; rows: SpeedAccuracyRow[] }

const METHOD_NAMES: Record<SpeedAccuracyRow['method'], string> = { unpruned: 'unpruned', tome: 'ToMe (no training)', dynamicvit: 'DynamicViT (fine-tuned)' };

/**
 * One point per setting. Each method's line starts at the unpruned model, so it reads as a trade
 * from it; the unpruned point itself is drawn and labelled once, in its own colour, below the point.
 */
export function speedAccuracySpec(report: Report, batch: string): TopLevelSpec {
  const base = report.rows.find((r) => r.method === 'unpruned');
  const point = (r: SpeedAccuracyRow, method: string, order: number, label: string) => ({
    method, order, label, imagesPerSecond: r.imagesPerSecond[batch], top1: 100 * r.top1, gflops: r.gflopsPerImage,
  });
  const values = [];
  if (base) values.push(point(base, METHOD_NAMES.unpruned, 0, 'unpruned'));
  for (const m of ['tome', 'dynamicvit'] as const) {
    const rows = report.rows.filter((r) => r.method === m).sort((a, b) => (m === 'tome' ? a.value - b.value : b.value - a.value));
    if (!rows.length) continue;
    if (base) values.push(point(base, METHOD_NAMES[m], 0, ''));
    rows.forEach((r, i) => values.push(point(r, METHOD_NAMES[m], i + 1, m === 'tome' ? `r=${r.value}` : `ρ=${r.value}`)));
  }
  const colour = {
    field: 'method', type: 'nominal' as const, title: null,
    scale: { domain: Object.values(METHOD_NAMES), range: ['#333333', '#f58518', '#4c78a8'] },
    legend: { orient: 'bottom' as const, direction: 'horizontal' as const, labelLimit: 300 },
  };
  const isBase = `datum.method === '${METHOD_NAMES.unpruned}'`;
  return {
    title: { text: `Token reduction: speed for accuracy (${report.model}, Fashion-MNIST)`, subtitle: `${report.images} test images; batch ${batch}, ${report.threads} ORT thread(s); ${report.date.slice(0, 10)}, load average ${report.loadAverage.start.toFixed(1)}` },
    width: 520, height: 320,
    config: { font: 'DejaVu Sans, sans-serif', background: 'white', padding: 16, title: { fontSize: 15, anchor: 'start' }, axis: { labelFontSize: 12, titleFontSize: 12 }, legend: { labelFontSize: 12 } },
    data: { values },
    encoding: {
      x: { field: 'imagesPerSecond', type: 'quantitative', title: `images/s (batch ${batch})`, scale: { zero: false, nice: true } },
      y: { field: 'top1', type: 'quantitative', title: 'test top-1 (%)', scale: { zero: false }, axis: { format: '.1f' } },
      color: colour,
    },
    layer: [
      { mark: { type: 'line', point: { size: 60, filled: true }, strokeWidth: 2 }, encoding: { order: { field: 'order', type: 'quantitative' } } },
      { transform: [{ filter: `datum.label !== '' && !(${isBase})` }], mark: { type: 'text', dx: 6, dy: -8, align: 'left', fontSize: 11 }, encoding: { text: { field: 'label', type: 'nominal' } } },
      { transform: [{ filter: isBase }], mark: { type: 'point', size: 70, filled: true, opacity: 1 } },
      { transform: [{ filter: isBase }], mark: { type: 'text', dy: 16, align: 'center', fontSize: 11 }, encoding: { text: { field: 'label', type: 'nominal' } } },
    ],
  };
}

async function main(): Promise<void> {
  const input = process.argv[2];
  if (!input || input.startsWith('--')) throw new Error('usage: speed_accuracy_plot.ts results.json [--batch 32] [--out docs/images/speed_accuracy_fm]');
  const flag = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1]! : fallback;
  };
  const report = JSON.parse(readFileSync(input, 'utf8')) as Report;
  const batch = flag('batch', Object.keys(report.rows[0]!.imagesPerSecond)[0]!);
  const out = flag('out', 'docs/images/speed_accuracy_fm');
  const svg = await renderSvg(speedAccuracySpec(report, batch));
  writeFileSync(`${out}.svg`, svg);
  writeFileSync(`${out}.png`, await svgToPng(svg));
  console.log(`wrote ${out}.svg and ${out}.png`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) await main();
