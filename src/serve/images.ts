/**
 * Reading uploaded images from a request: the raw body (Content-Type image/* or
 * application/octet-stream), multipart file parts, or for the batch endpoint JSON
 * `{ "images": ["<base64>", …] }`. Decoding and the eval transform are src/data/image's.
 */
import type { FastifyRequest } from 'fastify';
import { ImageDecodeError, loadImageForModel, type EvalTransform } from '../data/image/image.js';
import { ACCEPTED_TYPES, bodyTooLarge, HttpError } from './errors.js';

const mediaType = (req: FastifyRequest) => (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();

/**
 * The images in a request, at most `max`; throws 4xx HttpErrors for anything else. `bodyLimit`
 * caps a multipart body as a whole (fastify caps the other bodies).
 */
export async function readImages(req: FastifyRequest, max: number, { json = false, bodyLimit = Infinity } = {}): Promise<Buffer[]> {
  const type = mediaType(req);
  let images: Buffer[];
  if (req.isMultipart()) {
    images = await readMultipart(req, max, bodyLimit);
  } else if (Buffer.isBuffer(req.body)) {
    images = [req.body];
  } else if (type === 'application/json') {
    if (!json) throw new HttpError(415, 'unsupported_media_type', `this endpoint takes ${ACCEPTED_TYPES}, not JSON`);
    images = base64Images(req.body, max);
  } else if (req.body === undefined || req.body === null) {
    images = [];
  } else {
    throw new HttpError(415, 'unsupported_media_type', `Content-Type ${type || '(none)'} is not accepted; send ${ACCEPTED_TYPES}`);
  }
  if (images.length === 0 || images.some((b) => b.length === 0)) {
    throw new HttpError(400, 'empty_body', `the request holds no image (or an empty one); send ${ACCEPTED_TYPES}`);
  }
  return images;
}

/**
 * The file parts of a multipart body. The plugin caps each file; the body as a whole is counted
 * here, and past `bodyLimit` the parser is cut off and the request paused, so many files under
 * the limit cannot make the server read (or hold) more than the limit. A body the parser cannot
 * read (truncated, without its boundary) is the client's error.
 */
async function readMultipart(req: FastifyRequest, max: number, bodyLimit: number): Promise<Buffer[]> {
  const collect = async () => {
    const images: Buffer[] = [];
    for await (const part of req.parts()) {
      if (part.type !== 'file') continue;
      if (images.length === max) throw new HttpError(413, 'too_many_files', `at most ${max} image${max > 1 ? 's' : ''} per request`);
      images.push(await part.toBuffer());
    }
    return images;
  };
  let tooLarge!: (e: HttpError) => void;
  const overLimit = new Promise<never>((_, reject) => { tooLarge = reject; });
  let read = 0;
  const count = (chunk: Buffer) => {
    read += chunk.length;
    if (read <= bodyLimit) return;
    req.raw.off('data', count).unpipe().pause();
    tooLarge(bodyTooLarge(bodyLimit));
  };
  // collect() has piped the request into the parser by its first await, so counting starts with the first chunk
  const collected = collect();
  req.raw.on('data', count);
  try {
    return await Promise.race([collected, overLimit]);
  } catch (e) {
    // the plugin's own errors (limits, a premature close) carry their status; the parser's do not
    if (e instanceof HttpError || (e as { statusCode?: number }).statusCode) throw e;
    throw new HttpError(400, 'invalid_multipart', `the multipart/form-data body is malformed: ${String((e as Error).message ?? e).replace(/\s+/g, ' ')}`);
  } finally {
    req.raw.off('data', count);
  }
}

function base64Images(body: unknown, max: number): Buffer[] {
  const list = (body as { images?: unknown } | null)?.images;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) {
    throw new HttpError(400, 'invalid_request', 'JSON bodies must be {"images": ["<base64>", …]}');
  }
  if (list.length > max) throw new HttpError(413, 'too_many_files', `at most ${max} images per request, got ${list.length}`);
  return list.map((s: string) => Buffer.from(s, 'base64'));
}

/** Decodes and preprocesses one image; a non-image or corrupt file is a 400. */
export async function decodeImage(bytes: Uint8Array, t: EvalTransform, label: string): Promise<Float32Array> {
  try {
    return await loadImageForModel(bytes, t, label);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw new HttpError(400, 'invalid_image', e.message);
    throw e;
  }
}
