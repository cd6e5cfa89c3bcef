/**
 * The Fashion-MNIST CLIP target of issue #20, with the commands a user runs: a tiny CLIP
 * (clip_contrastive_tiny: image tower 128 wide × 2 blocks, text 64 × 2, embedding 32, 32×32
 * input — the 28×28 images are resized) pretrained by `pretrain --method clip` on captions made
 * from the labels (bench/clip_fm_data.ts), then
 *   1. its zero-shot accuracy (`eval --zero-shot`, prompt "a photo of a {}.") on held-out test images,
 *   2. the accuracy after 1 epoch of fine-tuning (`train --pretrained RUN/last.safetensors --model clip_tiny`),
 *   3. beside a random start of the same image tower with the same budget (`train --model clip_tiny`).
 * Prints a JSON line per step and a Markdown table.
 *
 * Steps 2 and 3 run at each fine-tuning lr of `--lr` (a list).
 *
 *   npx tsx bench/clip_fm_target.ts [--pretrain 2000] [--finetune 1000] [--test 1000] [--epochs 5] [--lr 5e-4,1e-4] [--threads 2] [--seed 0] [--out DIR]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFmClipData } from './clip_fm_data.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const n = { pretrain: Number(arg('pretrain', '2000')), finetune: Number(arg('finetune', '1000')), test: Number(arg('test', '1000')) };
const epochs = arg('epochs', '5');
const lrs = arg('lr', '5e-4,1e-4').split(',');
const threads = arg('threads', '2');
const seed = arg('seed', '0');
const out = arg('out', mkdtempSync(join(tmpdir(), 'clip-fm-')));
const root = new URL('../', import.meta.url).pathname;

/** Runs `tessera ARGS --json` and returns its last stdout line as JSON, with the wall time. */
function tessera(args: string[]): { result: any; seconds: number } {
  const start = performance.now();
  const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args, '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const seconds = (performance.now() - start) / 1000;
  const result = JSON.parse(stdout.trim().split('\n').pop()!);
  console.log(JSON.stringify({ command: `tessera ${args.join(' ')}`, seconds: +seconds.toFixed(1), result }));
  return { result, seconds };
}

const data = await writeFmClipData(join(out, 'data'), { ...n, seed: Number(seed) });
console.log(JSON.stringify({ data: { ...n, vocabSize: data.vocabSize, merges: data.merges, dir: data.dir } }));
const common = ['--threads', threads, '--seed', seed, '--overwrite'];
const pre = tessera(['pretrain', '--method', 'clip', '--dataset', data.captions, '--model-kwargs', `vocab_size=${data.vocabSize}`, '--epochs', epochs,
  '--batch-size', '64', '--output', join(out, 'clip'), ...common]);
const ckpt = join(out, 'clip', 'last.safetensors');
const zs = tessera(['eval', '--zero-shot', '--checkpoint', ckpt, '--dataset', data.labels, '--split', 'test', '--threads', threads]);
const runs = lrs.map((lr) => {
  const ftArgs = ['--dataset', data.labels, '--epochs', '1', '--batch-size', '32', '--lr', lr, '--warmup-epochs', '0', ...common];
  const ft = tessera(['train', '--pretrained', ckpt, '--model', 'clip_tiny', '--output', join(out, `ft-${lr}`), ...ftArgs]);
  const scratch = tessera(['train', '--model', 'clip_tiny', '--output', join(out, `scratch-${lr}`), ...ftArgs]);
  return { ft: ft.result.top1 as number, scratch: scratch.result.top1 as number };
});

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
const code = (t: string) => `\`${t}\``;
console.log(`
| start of the ${code('clip_tiny')} image tower | zero-shot top-1 | ${lrs.map((lr) => `1 epoch, lr ${lr}`).join(' | ')} |
|---|---|${lrs.map(() => '---|').join('')}
| ${code('pretrain --method clip')}, ${epochs} epochs on ${n.pretrain} captioned images (${pre.seconds.toFixed(0)} s) | ${pct(zs.result.top1)} | ${runs.map((r) => pct(r.ft)).join(' | ')} |
| random init, same budget | — | ${runs.map((r) => pct(r.scratch)).join(' | ')} |
`);
