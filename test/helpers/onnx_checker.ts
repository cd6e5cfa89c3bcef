/** Runs onnx.checker (full_check) from Debian's python3-onnx over model files; returns 'ok' or the failures. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHECK = `
import sys, onnx
bad = []
for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:
        bad.append(f"{path}: {e}")
print("\\n".join(bad) if bad else "ok")
`;

export function checkOnnxModels(models: [string, Uint8Array][]): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-checker-'));
  try {
    const paths = models.map(([name, bytes]) => {
      const path = join(dir, `${name}.onnx`);
      writeFileSync(path, bytes);
      return path;
    });
    return execFileSync('/usr/bin/python3', ['-c', CHECK, ...paths], { encoding: 'utf8', maxBuffer: 1 << 24 }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
