/** `tessera import-run DIR`: a timm train.py output directory as a tessera run directory. */
import type { Command } from 'commander';
import { importTimmRun } from '../train/import_run.js';

export function registerImportRunCommand(program: Command): void {
  program.command('import-run')
    .description("turn a timm train.py output (args.yaml, summary.csv, model_best.pth.tar / checkpoint-*.pth.tar) into a tessera run directory for eval, explain, attack, export and serve")
    .argument('<dir>', "timm's output/<experiment> directory")
    .option('--output <run-dir>', 'the run directory to write (default runs/<model>-imported-<timestamp>)')
    .option('--overwrite', 'replace a run already in --output')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, f: { output?: string; overwrite?: boolean; json?: boolean }) => {
      const r = await importTimmRun(dir, { output: f.output, overwrite: f.overwrite });
      if (f.json) console.log(JSON.stringify(r));
      else console.log(`imported ${r.checkpoint} (${r.model}, ${r.epochs} epochs in summary.csv${r.best?.eval_top1 !== undefined ? `, best top-1 ${(100 * r.best.eval_top1).toFixed(2)}% at epoch ${r.best.epoch}` : ''}) into ${r.runDir}`);
    });
}
