/** Process entry of the `tessera` command. */
import { availableParallelism } from 'node:os';

// libuv sizes its thread pool (where sharp decodes images) at its first use, which may come from
// any module's import; so it is set before main's imports are loaded
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));
const { main } = await import('./main.js');

process.exitCode = await main(process.argv.slice(2));
