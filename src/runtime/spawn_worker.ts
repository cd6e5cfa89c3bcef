/**
 * Starts a worker thread from a module next to the caller. From the TypeScript sources (tsx,
 * vitest) the thread registers tsx itself before importing the .ts file; the built package runs
 * the compiled .js directly.
 */
import { Worker } from 'node:worker_threads';

/** `name` is the module's file name without extension, resolved against `callerUrl` (import.meta.url). */
export function spawnModuleWorker(callerUrl: string, name: string, workerData: unknown): Worker {
  const url = new URL(callerUrl.endsWith('.ts') ? `./${name}.ts` : `./${name}.js`, callerUrl);
  if (url.pathname.endsWith('.js')) return new Worker(url, { workerData });
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
