/**
 * Reading uploaded images from a request: the raw body (Content-Type image/* or
 * application/octet-stream), multipart file parts, or for the batch endpoint JSON
 * `{ "images": ["<base64>", …] }`. Decoding and the eval transform are src/data/image's.
 */
import type { FastifyRequest } from 'fastify';
import { ImageDecodeError, loadImageForModel, type EvalTransform } from '../data/image/image.js';
import { ACCEPTED_TYPES, HttpError } from './errors.js';

const mediaType = (req: FastifyRequest) => (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();

/** The images in a request, at most `max`; throws 4xx HttpErrors for anything else. */
export async function readImages(req: FastifyRequest, max: number, { json = false } = {}): Promise<Buffer[]> {
  const type = mediaType(req);
  let images: Buffer[];
  if (req.isMultipart()) {
    images = [];
    for await (const part of req.parts()) {
      if (part.type !== 'file') continue;
      if (images.length === max) throw new HttpError(413, 'too_many_files', `at most ${max} image${max > 1 ? 's' : ''} per request`);
      images.push(await part.toBuffer());
    }
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
