/**
 * Errors as JSON: every failure the server reports has a status, a stable code and a message,
 * `{ "error": "unsupported_media_type", "message": "…" }`, including fastify's own (unknown
 * content type, body too large, bad JSON) and multipart limits.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(readonly statusCode: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface ErrorBody { error: string; message: string }

export const ACCEPTED_TYPES = 'image/* or application/octet-stream (the image bytes as the body), or multipart/form-data (image files)';

/** fastify and @fastify/multipart error codes → our codes. */
const KNOWN: Record<string, [number, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'payload_too_large'],
  FST_REQ_FILE_TOO_LARGE: [413, 'payload_too_large'],
  FST_FILES_LIMIT: [413, 'too_many_files'],
  FST_PARTS_LIMIT: [413, 'too_many_parts'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'empty_body'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'bad_content_length'],
  FST_INVALID_JSON_BODY: [400, 'invalid_json'],
  FST_ERR_VALIDATION: [400, 'invalid_request'],
};

/** The 413 for a body over --body-limit, raw or multipart. */
export const bodyTooLarge = (limit: number) => new HttpError(413, 'payload_too_large',
  `the request body is over the ${limit}-byte limit (--body-limit); a multipart body counts all its files together`);

export function errorBody(e: FastifyError | HttpError | Error): { status: number; body: ErrorBody } {
  if (e instanceof HttpError) return { status: e.statusCode, body: { error: e.code, message: e.message } };
  const code = (e as FastifyError).code;
  const known = code ? KNOWN[code] : undefined;
  if (known) return { status: known[0], body: { error: known[1], message: e.message } };
  if (e instanceof SyntaxError) return { status: 400, body: { error: 'invalid_json', message: e.message } };
  const status = (e as FastifyError).statusCode;
  if (status && status >= 400 && status < 500) return { status, body: { error: 'bad_request', message: e.message } };
  return { status: 500, body: { error: 'internal', message: e.message } };
}

export function handleError(e: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = errorBody(e);
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    body.message = `Content-Type ${req.headers['content-type'] ?? '(none)'} is not accepted; send ${ACCEPTED_TYPES}`;
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.code === 'FST_REQ_FILE_TOO_LARGE') body.message = bodyTooLarge(req.routeOptions.bodyLimit).message;
  if (status >= 500) req.log.error(e);
  if (!req.raw.complete) closeAfterAnswer(req, reply);
  void reply.code(status).type('application/json').send(body);
}

/** How long the answer to a refused upload has before its connection is reset. */
const LINGER_MS = 500;

/**
 * A body refused before its end (too large, unparseable) is not read on: the answer says
 * `connection: close`, and the server half-closes, stops reading and resets the connection
 * LINGER_MS later, or when the client hangs up first (Go's net/http waits 500 ms too). Closing
 * at once resets it under the client's upload, and the client may see EPIPE instead of the
 * answer (measured with node:http clients: 3 of 320 oversized uploads); while the server does
 * not read, the TCP window fills and the client's writes wait instead of failing.
 */
function closeAfterAnswer(req: FastifyRequest, reply: FastifyReply): void {
  void reply.header('connection', 'close');
  const socket = req.raw.socket;
  // node's http server ends a `connection: close` response with socket.destroySoon()
  socket.destroySoon = () => {
    socket.end();
    socket.pause();
    const reset = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(reset));
  };
}

export function handleNotFound(req: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` });
}
