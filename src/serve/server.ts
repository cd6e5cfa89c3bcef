/**
 * The HTTP inference server (fastify): classification endpoints backed by a dynamic batcher,
 * model metadata, health, Prometheus metrics and the web page. Closing it finishes the requests
 * in flight before the model is released.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { evalTransformOf } from '../export/metadata.js';
import { DynamicBatcher } from './batcher.js';
import { handleError, handleNotFound, HttpError } from './errors.js';
import { decodeImage, readImages } from './images.js';
import { ServeMetrics } from './metrics.js';
import { modelInfo, prediction } from './prediction.js';
import { registerStatic } from './static.js';
import { registerTiledRoute } from './tiled_route.js';
import { lazyCutThread } from '../predict/tile_cutter.js';
import type { ServedModel } from './worker_model.js';

export interface ServeOptions {
  /** The model: on an inference thread (startInferenceWorker, what `serve` uses) or an OnnxModel on this one. */
  model: ServedModel;
  /** Most images per model run (1: no batching). Default 32. */
  maxBatch?: number;
  /** Longest an image waits for others to join its batch. Default 5 ms. */
  maxWaitMs?: number;
  /** Largest request body in bytes; a multipart body counts whole, all its files together. Default 10 MiB. */
  bodyLimit?: number;
  /** Labels returned per image unless ?topk= says otherwise. Default 5. */
  topk?: number;
  /** Most images in one /v1/predict/batch request. Default 256. */
  maxImagesPerRequest?: number;
  /** Images allowed to wait; beyond it requests get 503. Default 64 × maxBatch. */
  maxQueue?: number;
  /** fastify's request log (pino, JSON lines on stdout). Default off. */
  logger?: boolean;
  /** On close, how long requests in flight (slow downloads included) may take to finish. Default 30 s. */
  shutdownGraceMs?: number;
}

export interface TesseraServer {
  readonly app: FastifyInstance;
  readonly model: ServedModel;
  readonly metrics: ServeMetrics;
  readonly batcher: DynamicBatcher;
  /** Starts listening; resolves with the base URL (port 0 picks a free port). */
  listen(port: number, host?: string): Promise<string>;
  /** Stops accepting requests, lets those in flight finish, then releases the model. */
  close(): Promise<void>;
}

interface PredictQuery { topk?: number; logits?: boolean }

export async function createServer(o: ServeOptions): Promise<TesseraServer> {
  const { model } = o;
  const meta = model.meta;
  const maxBatch = o.maxBatch ?? 32;
  const maxWaitMs = o.maxWaitMs ?? 5;
  const bodyLimit = o.bodyLimit ?? 10 * 2 ** 20;
  const maxImages = o.maxImagesPerRequest ?? 256;
  const maxQueue = o.maxQueue ?? 64 * maxBatch;
  const classes = meta.classNames.length;
  const defaultTopk = Math.min(o.topk ?? 5, classes);
  const transform = evalTransformOf(meta);
  const [c, h, w] = meta.inputSize;
  const metrics = new ServeMetrics();
  // with an attention map, each image's output row is its logits followed by its map
  const mapSize = model.runWithAttention && model.attentionSize ? model.attentionSize : 0;
  const batcher = new DynamicBatcher({
    maxBatch, maxWaitMs, itemSize: c * h * w, outputSize: classes + mapSize,
    run: mapSize ? (x, count) => runPacked(model, x, count, classes, mapSize) : (x) => model.run(x),
    onBatch: (n, s) => {
      metrics.batchSize.observe(n);
      metrics.inference.observe(s);
      metrics.images.inc({}, n);
    },
  });
  metrics.gauge('tessera_queue_images', 'Images waiting for a model run.', () => batcher.queued);
  let draining = false;
  metrics.gauge('tessera_draining', '1 while shutting down.', () => Number(draining));

  const app = Fastify({ logger: o.logger ?? false, bodyLimit, forceCloseConnections: 'idle', return503OnClosing: true });
  app.removeContentTypeParser('text/plain');
  for (const type of ['application/octet-stream', /^image\/[\w.+-]+$/]) {
    app.addContentTypeParser(type, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  }
  await app.register(multipart, { limits: { fileSize: bodyLimit, files: maxImages, fields: 16, parts: maxImages + 16 } });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  // requests between arrival and their end, so close() knows when none is left. A request ends
  // when answered or when its connection closes: onResponse never runs for one whose client
  // went away (mid-upload or while it waited), so each is also ended by its socket's 'close'.
  const inFlight = new Map<FastifyRequest, () => void>();
  let settled: (() => void) | undefined;
  const ended = (req: FastifyRequest) => {
    const onClose = inFlight.get(req);
    if (!onClose) return; // already ended
    inFlight.delete(req);
    req.raw.socket.off('close', onClose);
    if (inFlight.size === 0) settled?.();
  };
  metrics.gauge('tessera_http_requests_in_flight', 'Requests received and not yet answered or abandoned by their client (uploads included).', () => inFlight.size);
  app.addHook('onRequest', async (req) => {
    const onClose = () => ended(req);
    inFlight.set(req, onClose);
    req.raw.socket.once('close', onClose);
    if (req.raw.socket.destroyed) ended(req); // closed before this hook ran
  });
  app.addHook('onResponse', async (req, reply) => {
    ended(req);
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: req.method, status: String(reply.statusCode) });
    metrics.latency.observe(reply.elapsedTime / 1000, { route });
  });

  const querySchema = {
    type: 'object',
    properties: { topk: { type: 'integer', minimum: 1, maximum: classes }, logits: { type: 'boolean' } },
    additionalProperties: false,
  };

  async function classify(images: Buffer[], q: PredictQuery) {
    if (batcher.queued + images.length > maxQueue) throw new HttpError(503, 'overloaded', `${batcher.queued} images are waiting; try again shortly`);
    const arrivals = batcher.expect(images.length);
    let xs: Float32Array[];
    try {
      xs = await Promise.all(images.map((b, i) => decodeImage(b, transform, images.length > 1 ? `image ${i}` : 'the image')));
    } catch (e) {
      arrivals.cancel();
      throw e;
    }
    const rows = await Promise.all(xs.map((x) => arrivals.submit(x)));
    return rows.map((r) => prediction(r.subarray(0, classes), meta, q.topk ?? defaultTopk, q.logits ?? false, mapSize ? r.subarray(classes) : undefined));
  }

  app.post<{ Querystring: PredictQuery }>('/v1/predict', { schema: { querystring: querySchema } }, async (req) => {
    const [p] = await classify(await readImages(req, 1, { bodyLimit }), req.query);
    return { model: meta.model, ...p };
  });

  app.post<{ Querystring: PredictQuery }>('/v1/predict/batch', { schema: { querystring: querySchema } }, async (req) => {
    const results = await classify(await readImages(req, maxImages, { json: true, bodyLimit }), req.query);
    return { model: meta.model, results };
  });

  const cutter = lazyCutThread();
  registerTiledRoute(app, { batcher, transform, meta, bodyLimit, maxQueue, defaultTopk, cutter });

  const info = modelInfo(meta, model.bytes.byteLength, { maxBatch, maxWaitMs }, mapSize);
  app.get('/v1/model', async () => info);
  app.get('/healthz', async (_req, reply) => {
    if (draining) return reply.code(503).send({ status: 'draining' });
    if (model.alive && !model.alive()) return reply.code(503).send({ status: 'model_unavailable' });
    return { status: 'ok', model: meta.model, queued: batcher.queued };
  });
  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render()));
  await registerStatic(app, { bytes: model.bytes, name: meta.model });

  let closing: Promise<void> | undefined;
  return {
    app, model, metrics, batcher,
    async listen(port, host = '127.0.0.1') {
      await app.listen({ port, host });
      const addr = app.server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      return `http://${host.includes(':') ? `[${host}]` : host}:${p}`;
    },
    close() {
      closing ??= (async () => {
        draining = true;
        const closed = app.close(); // stops accepting; new requests on open connections get 503
        if (inFlight.size > 0) {
          await new Promise<void>((r) => {
            settled = r;
            setTimeout(r, o.shutdownGraceMs ?? 30_000).unref();
          });
        }
        // what is left are idle keep-alive connections and ones whose unread body was refused (413)
        app.server.closeAllConnections();
        await closed;
        await batcher.idle();
        await cutter.close();
        await model.dispose();
      })();
      return closing;
    },
  };
}

/** Runs a batch and lays each image's logits and attention map out back to back, as one batcher row. */
async function runPacked(model: ServedModel, x: Float32Array, count: number, classes: number, mapSize: number): Promise<Float32Array> {
  const { logits, attention } = await model.runWithAttention!(x);
  if (!attention || attention.length !== count * mapSize) {
    throw new Error(`the model returned ${attention ? attention.length / count : 'no'} attention values per image, expected ${mapSize}`);
  }
  const row = classes + mapSize;
  const out = new Float32Array(count * row);
  for (let i = 0; i < count; i++) {
    out.set(logits.subarray(i * classes, (i + 1) * classes), i * row);
    out.set(attention.subarray(i * mapSize, (i + 1) * mapSize), i * row + classes);
  }
  return out;
}

/** '10mb', '512kb', '1048576' → bytes (binary units, as fastify and body-parser use). */
export function parseByteSize(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(v);
  if (!m) throw new RangeError(`expected a size such as 10mb, 512kb or 1048576, got "${v}"`);
  const unit = { b: 1, kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30 }[(m[2] ?? 'b').toLowerCase() as 'b']!;
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1) throw new RangeError(`a body limit must be at least 1 byte, got "${v}"`);
  return bytes;
}
