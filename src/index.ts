/** tessera's public API. */
export * from './engine.js';

// The toolkit above the engine. Each area is a namespace (`import { models, train } from
// 'tessera'`), so names such as `evaluate` or `Batch` cannot collide across areas.
export * as nn from './nn/index.js';
export * as models from './models/api.js';
export * as data from './data/api.js';
export * as checkpoint from './checkpoint/api.js';
export * as training from './train/api.js';
export * as pretrain from './train/pretrain_api.js';
export * as explain from './explain/index.js';
export * as robust from './robust/index.js';
export * as deploy from './export/api.js';
export * as serve from './serve/api.js';
