/**
 * What a plain `npm ci` warns about, checked from package.json and the lock file: a locked package
 * whose engines exclude this Node (EBADENGINE), an install script allowScripts does not cover
 * (npm ≥ 11.16's install-scripts advisory), and a project .npmrc key npm does not know.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const root = new URL('../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { allowScripts?: Record<string, boolean> };
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as {
  packages: Record<string, { engines?: { node?: string }; hasInstallScript?: boolean; optional?: boolean }>;
};
// npm's own range matcher (a dependency of many packages here; no types)
const semver = createRequire(import.meta.url)('semver') as { satisfies(version: string, range: string): boolean };
const nameOf = (path: string) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);

describe('npm ci prints no warning', () => {
  it(`every locked package's engines accept this Node (${process.version})`, () => {
    const refused = Object.entries(lock.packages)
      .filter(([path, p]) => path && p.engines?.node && !semver.satisfies(process.version, p.engines.node))
      .map(([path, p]) => `${nameOf(path)} (node ${p.engines!.node})`);
    expect(refused).toEqual([]);
  });

  it('allowScripts decides every install script, and denies onnxruntime-node\'s (it fetches CUDA files from outside the registry)', () => {
    const scripted = [...new Set(Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript).map(([path]) => nameOf(path)))];
    expect(scripted.filter((name) => pkg.allowScripts?.[name] === undefined)).toEqual([]);
    expect(pkg.allowScripts?.['onnxruntime-node']).toBe(false);
  });

  it('the project .npmrc holds no key npm does not know', () => {
    const npmrc = new URL('.npmrc', root);
    if (existsSync(npmrc)) expect(readFileSync(npmrc, 'utf8')).not.toMatch(/^\s*onnxruntime-node-install/m);
  });
});
