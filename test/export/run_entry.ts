/** Runs test/export/cli_entry.ts (`tessera` with export and serve) in a child process, as runCli does for bin.ts. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CliResult } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

export function runTessera(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/export/cli_entry.ts', ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
