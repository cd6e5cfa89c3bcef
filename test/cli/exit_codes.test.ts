/**
 * README's rule for the exit status, one case of each kind: 2 for a command line that is wrong in
 * itself (the parser's checks, a refused flag value, options that do not go together), found
 * before anything is read; 1 for a command that failed on what it read.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-exit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const isolated = { HOME: join(dir, 'home'), TESSERA_DATASET_MIRROR: 'http://127.0.0.1:9/', TESSERA_DATA: '' };
const nope = join(dir, 'nope.safetensors');
const config = join(dir, 'bad.yaml');
writeFileSync(config, 'lr: -1\n');

const cases: [string, string[], number][] = [
  ['an unknown option', ['eval', '--nosuch'], 2],
  ['a value outside its choices', ['eval', '--checkpoint', nope, '--split', 'validation'], 2],
  ['a train flag the schema refuses', ['train', '--lr', '-1', '--output', join(dir, 'never')], 2],
  ['--resume with flags that would change the run', ['train', '--resume', join(dir, 'run'), '--lr', '0.1'], 2],
  ['options that do not go together (predict)', ['predict', '--checkpoint', nope, '--json', '--jsonl', 'x.png'], 2],
  ['options that do not go together (explain)', ['explain', '--checkpoint', nope, '--out', join(dir, 'x'), '--smoothgrad', '4', 'x.png'], 2],
  ['options that do not go together (export)', ['export', '--checkpoint', nope, '--out', join(dir, 'x.onnx'), '--per-tensor'], 2],
  ['--split all of a built-in dataset', ['eval', '--checkpoint', nope, '--split', 'all'], 2],
  ['a missing checkpoint', ['eval', '--checkpoint', nope], 1],
  ['a config file with a bad value', ['train', '--config', config, '--output', join(dir, 'never')], 1],
];

describe('exit status', () => {
  it.each(cases)('%s', async (_, args, code) => {
    const r = await runCli(args, isolated);
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('npm warn'))).toHaveLength(1);
  });
});
