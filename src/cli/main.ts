/**
 * The `tessera` command line. One file per command; this file only wires them up and maps errors
 * to the exit status README states: 2 for a command line that is wrong in itself (the parser's
 * checks, a refused flag value, options that do not go together), 1 for a command that failed on
 * what it read or did, 130 after Ctrl-C (set by the command).
 */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../train/config.js';
import { UsageError } from './output.js';
import { registerModelsCommand } from './models.js';
import { registerBenchCommand } from './bench.js';
import { registerTrainCommand } from './train.js';
import { registerPretrainCommand } from './pretrain.js';
import { registerEvalCommand } from './eval.js';
import { registerPredictCommand } from './predict.js';
import { registerZeroShotCommand } from './zero_shot.js';
import { registerConvertCommand } from './convert.js';
import { registerExplainCommand } from './explain.js';
import { registerAttackCommand } from './attack.js';
import { registerExportCommand } from './export.js';
import { registerServeCommand } from './serve.js';
import { registerTorchrunCommand } from './torchrun.js';
import { registerImportRunCommand } from './import_run.js';

import { registerStatsCommand } from './stats.js';
import { registerCalibrateCommand } from './calibrate.js';

export function buildProgram(): Command {
  const program = new Command('tessera')
    .description('Vision Transformers in TypeScript: train, evaluate, explain, attack and export ViTs on ONNX Runtime')
    .configureOutput({
      // one line per error, prefixed like our own errors
      outputError: (str, write) => write(`tessera: ${str.trim().replace(/^error: /, '')} (see --help)\n`),
    })
    .exitOverride();
  registerTrainCommand(program);
  registerPretrainCommand(program);
  registerEvalCommand(program);
  registerPredictCommand(program);
  registerZeroShotCommand(program);
  registerConvertCommand(program);
  registerExplainCommand(program);
  registerAttackCommand(program);
  registerExportCommand(program);
  registerServeCommand(program);
  registerTorchrunCommand(program);
  registerImportRunCommand(program);
  registerModelsCommand(program);
  registerBenchCommand(program);
  registerStatsCommand(program);
  registerCalibrateCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    // a command may set its own status (130 after Ctrl-C)
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (!(e instanceof CommanderError)) console.error(`tessera: ${(e as Error).message}`);
    return exitStatusOf(e);
  }
}

/** The exit status of a command that threw `e` (commander has printed its own errors already). */
export function exitStatusOf(e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
  return e instanceof UsageError || (e instanceof ConfigError && e.flag) ? 2 : 1;
}
