/**
 * The `tessera` command with `export` and `serve` registered, for tests that spawn it as a user
 * would. Until src/cli/main.ts wires the two commands this adds them; afterwards it is main's.
 */
import { CommanderError } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { registerExportCommand } from '../../src/cli/export.js';
import { registerServeCommand } from '../../src/cli/serve.js';

const program = buildProgram();
const has = (name: string) => program.commands.some((c) => c.name() === name);
if (!has('export')) registerExportCommand(program);
if (!has('serve')) registerServeCommand(program);

try {
  await program.parseAsync(process.argv.slice(2), { from: 'user' });
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else {
    console.error(`tessera: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
