/** The HTTP inference server and its dynamic batcher. */
export { createServer, type ServeOptions, type TesseraServer } from './server.js';
export { startInferenceWorker, type ServedModel } from './worker_model.js';
export { DynamicBatcher, type BatcherOptions } from './batcher.js';
