/**
 * Starts a worker thread from a module next to the caller. From the TypeScript sources (tsx,
 * vitest) the thread registers tsx's loader, found from this package (not from the thread's
 * working directory), before importing the .ts file; the built package runs the compiled .js.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/** `name` is the module's file name without extension, resolved against `callerUrl` (import.meta.url). */
export function spawnModuleWorker(callerUrl: string, name: string, workerData?: unknown): Worker {
  const url = new URL(callerUrl.endsWith('.ts') ? `./${name}.ts` : `./${name}.js`, callerUrl);
  if (url.pathname.endsWith('.js')) return new Worker(url, { workerData });
  const boot = `import(${JSON.stringify(tsxApiUrl())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

function tsxApiUrl(): string {
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api');
  const esm = cjs.replace(/\.cjs$/, '.mjs');
  return pathToFileURL(existsSync(esm) ? esm : cjs).href;
}
