/**
 * `tessera stats --dataset D`: per-channel mean/std of an image folder's or manifest's training
 * images (data/stats/channel_stats.ts), printed, and with `--out stats.json` written (atomically)
 * for `tessera train --stats stats.json`, which stores them in the checkpoint as the
 * preprocessing mean/std that predict, eval, export and serve then use.
 */
import type { Command } from 'commander';
import { writeFileAtomic } from '../checkpoint/atomic.js';
import { openImageDataset } from '../data/datasets/folder_dataset.js';
import { channelStats } from '../data/stats/channel_stats.js';
import { sharedOption } from './common_options.js';
import { UsageError, printTable } from './output.js';

export function registerStatsCommand(program: Command): void {
  program.command('stats')
    .description('per-channel mean and std (population, over every pixel, samples in [0, 1] by bit depth) of a dataset\'s training images')
    .requiredOption('--dataset <path>', 'an image folder (one subfolder per class) or a .csv/.jsonl manifest')
    .option('--out <file>', 'also write {channels, mean, std, …} as JSON, for train --stats')
    .addOption(sharedOption('json', { description: 'print the statistics as JSON' }))
    .action(async (f: { dataset: string; out?: string; json?: boolean }) => {
      let paths: string[];
      try {
        paths = [...openImageDataset(f.dataset).train.paths];
      } catch (e) {
        throw new UsageError(`--dataset ${f.dataset}: ${(e as Error).message}`);
      }
      const tty = process.stderr.isTTY;
      let lastTenth = -1;
      const stats = await channelStats(paths, (done, total) => {
        const tenth = Math.floor((10 * done) / total);
        if (tty) process.stderr.write(`\rstats: ${done}/${total} images${done === total ? '\n' : ''}`);
        else if (tenth !== lastTenth) { process.stderr.write(`stats: ${done}/${total} images\n`); lastTenth = tenth; }
      });
      const record = { dataset: f.dataset, ...stats };
      if (f.out) writeFileAtomic(f.out, `${JSON.stringify(record, null, 2)}\n`);
      if (f.json) console.log(JSON.stringify(record, null, 2));
      else {
        console.log(`${stats.images} images, ${stats.pixels} pixels each channel`);
        printTable(['channel', 'mean', 'std'], stats.mean.map((m, c) => [String(c), m.toFixed(6), stats.std[c]!.toFixed(6)]));
        if (f.out) console.log(`wrote ${f.out} (train --stats ${f.out})`);
      }
    });
}
