/** Explaining predictions: attention maps, rollout, gradient-weighted rollout (models with a token grid), saliency (any model). */
export * from './rollout.js';
export * from './maps.js';
export * from './probe.js';
export * from './explain.js';
