#!/usr/bin/env node
// The installed CLI runs the compiled sources (npm ci/install builds them via `prepare`).
import('../dist/src/cli/bin.js').catch((e) => {
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli')) {
    console.error('tessera: the compiled sources are missing; run `npm run build` in the tessera package first');
    process.exit(1);
  }
  throw e;
});
