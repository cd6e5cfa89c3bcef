/**
 * The web page's files: web/ (HTML, CSS, JS), onnxruntime-web's wasm build for the in-browser
 * mode, and the served model's .onnx bytes. Every response carries the cross-origin isolation
 * headers that let onnxruntime-web use wasm threads (SharedArrayBuffer); everything the page
 * loads is same-origin, so isolation costs nothing.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';

/** onnxruntime-web files the page needs: the wasm build (JS bundle) and its binary. */
const ORT_FILES = new Set(['ort.wasm.bundle.min.mjs', 'ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs', 'ort.wasm.min.mjs']);

/** web/ at the package root: two levels above src/serve (sources) or three above dist/src/serve (build). */
export function webRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const dir = join(here, up, 'web');
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  throw new Error(`the web page's files (web/index.html) were not found above ${here}`);
}

export function ortWebDist(): string {
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
}

export async function registerStatic(app: FastifyInstance, model: { bytes: Uint8Array; name: string }): Promise<void> {
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    reply.header('Cross-Origin-Embedder-Policy', 'require-corp');
    reply.header('X-Content-Type-Options', 'nosniff');
    return payload;
  });
  await app.register(fastifyStatic, { root: webRoot(), prefix: '/', index: 'index.html', cacheControl: false });
  await app.register(fastifyStatic, {
    root: ortWebDist(),
    prefix: '/ort/',
    decorateReply: false,
    allowedPath: (path) => ORT_FILES.has(path.replace(/^\//, '')),
    maxAge: '1d',
  });
  const body = Buffer.from(model.bytes.buffer, model.bytes.byteOffset, model.bytes.byteLength);
  const file = `${model.name.replace(/[^\w.-]/g, '_')}.onnx`;
  app.get('/v1/model.onnx', async (_req, reply) => reply
    .type('application/octet-stream')
    .header('Content-Disposition', `inline; filename="${file}"`)
    .send(body));
}
