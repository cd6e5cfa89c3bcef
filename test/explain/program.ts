/**
 * Runs `tessera explain` / `tessera attack` in-process, as src/cli/main.ts does (same program,
 * same one-line error handling), capturing what would go to stdout and stderr.
 */
import { CommanderError } from 'commander';
import { vi } from 'vitest';
import { buildProgram, exitStatusOf } from '../../src/cli/main.js';
import { registerAttackCommand } from '../../src/cli/attack.js';
import { registerExplainCommand } from '../../src/cli/explain.js';

export interface RunResult { code: number; stdout: string; stderr: string }

export async function runCommand(args: string[]): Promise<RunResult> {
  const program = buildProgram();
  // until main.ts registers them itself
  const has = (name: string) => program.commands.some((c) => c.name() === name);
  if (!has('explain')) registerExplainCommand(program);
  if (!has('attack')) registerAttackCommand(program);
  let stdout = '';
  let stderr = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => { stdout += `${a.join(' ')}\n`; });
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => { stderr += `${a.join(' ')}\n`; });
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { stderr += String(s); return true; });
  const writeOut = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { stdout += String(s); return true; });
  let code = 0;
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) console.error(`tessera: ${(e as Error).message}`);
    code = exitStatusOf(e);
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
    writeOut.mockRestore();
  }
  return { code, stdout, stderr };
}
