/**
 * `POST /v1/predict/tiled?tile=N[&stride=S][&aggregate=mean|max][&topk=k]`: sliding-window
 * inference (src/predict/tiled.ts) of one uploaded image larger than the model's input. Its
 * tiles go through the server's dynamic batcher like any other images, so they are batched with
 * each other and with concurrent requests.
 */
import type { FastifyInstance } from 'fastify';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import type { OnnxModelMeta } from '../export/metadata.js';
import { ImageDecodeError } from '../data/image/image_decode.js';
import { decodeForTiles, predictTiles } from '../predict/tiled.js';
import type { TileCutter } from '../predict/tile_cutter.js';
import type { DynamicBatcher } from './batcher.js';
import { HttpError } from './errors.js';
import { readImages } from './images.js';

interface TiledQuery { tile: number; stride?: number; aggregate?: 'mean' | 'max'; topk?: number }

export interface TiledRouteContext {
  batcher: DynamicBatcher;
  transform: EvalTransform;
  meta: OnnxModelMeta;
  bodyLimit: number;
  maxQueue: number;
  defaultTopk: number;
  /** cuts the tiles off the event loop (tile_cutter.ts); without it they are cut on the main thread */
  cutter?: TileCutter;
}

export function registerTiledRoute(app: FastifyInstance, ctx: TiledRouteContext): void {
  const { batcher, transform, meta } = ctx;
  const classes = meta.classNames.length;
  const per = transform.inputSize[0] * transform.inputSize[1] * transform.inputSize[2];
  const querystring = {
    type: 'object',
    required: ['tile'],
    properties: {
      tile: { type: 'integer', minimum: 1 }, stride: { type: 'integer', minimum: 1 },
      aggregate: { type: 'string', enum: ['mean', 'max'] }, topk: { type: 'integer', minimum: 1, maximum: classes },
    },
    additionalProperties: false,
  };
  app.post<{ Querystring: TiledQuery }>('/v1/predict/tiled', { schema: { querystring } }, async (req) => {
    const [bytes] = await readImages(req, 1, { bodyLimit: ctx.bodyLimit });
    const q = req.query;
    let decoded;
    try {
      decoded = await decodeForTiles(bytes!, transform, 'the image');
    } catch (e) {
      if (e instanceof ImageDecodeError) throw new HttpError(400, 'invalid_image', e.message);
      throw e;
    }
    const run = async (x: Float32Array, n: number) => {
      if (batcher.queued + n > ctx.maxQueue) throw new HttpError(503, 'overloaded', `${batcher.queued} images are waiting; try again shortly`);
      const arrivals = batcher.expect(n);
      // views, not copies: predictTiles does not refill x before this settles, and the batcher copies each image into its batch
      const rows = await Promise.all(Array.from({ length: n }, (_, i) => arrivals.submit(x.subarray(i * per, (i + 1) * per))));
      const out = new Float32Array(n * classes);
      rows.forEach((r, i) => out.set(r.subarray(0, classes), i * classes));
      return out;
    };
    const o = { tile: q.tile, stride: q.stride ?? Math.max(1, Math.round(q.tile / 2)), aggregate: q.aggregate ?? 'mean' as const, batchSize: 64, cutter: ctx.cutter };
    let p;
    try {
      p = await predictTiles(decoded, transform, run, classes, o, 'the image');
    } catch (e) {
      if (e instanceof ImageDecodeError) throw new HttpError(400, 'invalid_image', e.message);
      throw e;
    }
    const order = Array.from(p.probabilities, (probability, index) => ({ label: meta.classNames[index] ?? String(index), index, probability }))
      .sort((a, b) => b.probability - a.probability || a.index - b.index);
    return {
      model: meta.model, width: p.width, height: p.height, tile: o.tile, stride: o.stride, aggregate: o.aggregate,
      top: order.slice(0, q.topk ?? ctx.defaultTopk),
      tiles: p.tiles.map((t) => ({ left: t.left, top: t.top, width: t.width, height: t.height, probabilities: Array.from(t.probabilities) })),
    };
  });
}
