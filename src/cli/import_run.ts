/** `tessera import-run DIR`: a timm train.py output directory as a tessera run directory. */
import type { Command } from 'commander';
import { importTimmRun } from '../train/import_run.js';

export function registerImportRunCommand(program: Command): void {
  program.command('import-run')
    .description("turn a timm train.py output (args.yaml, summary.csv, model_best.pth.tar / checkpoint-*.pth.tar) into a tessera run directory for eval, explain, attack, export and serve")
    .argument('<dir>', "timm's output/<experiment> directory")
    .option('--output <run-dir>', 'the run directory to write (default runs/<model>-imported-<timestamp>)')
    .option('--overwrite', 'replace a run already in --output')
    .option('--ema', "take the checkpoint's EMA weights (state_dict_ema; an error without them). Default: the EMA's when present, as train.py evaluated and picked model_best by them")
    .option('--no-ema', 'take the raw weights (state_dict) even when the checkpoint has EMA weights')
    .option('--class-names <file>', "class names, one per line (class 0 first); default: the run's --class-map file, else its dataset's class folders, else torchvision's names for torch/fashion_mnist and torch/mnist")
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, f: { output?: string; overwrite?: boolean; ema?: boolean; classNames?: string; json?: boolean }) => {
      const r = await importTimmRun(dir, { output: f.output, overwrite: f.overwrite, ema: f.ema, classNames: f.classNames });
      if (f.json) {
        console.log(JSON.stringify(r));
        return;
      }
      console.log(`imported ${r.checkpoint} (${r.model}, ${r.weights === 'state_dict_ema' ? 'EMA weights' : 'weights'}, ${r.epochs} epochs in summary.csv${r.best?.eval_top1 !== undefined ? `, best top-1 ${(100 * r.best.eval_top1).toFixed(2)}% at epoch ${r.best.epoch}` : ''}) into ${r.runDir}`);
      console.log(r.classNamesFrom ? `class names from ${r.classNamesFrom}` : 'class names: the class numbers');
      console.log(`not carried: ${r.notCarried.join('; ')}`);
    });
}
