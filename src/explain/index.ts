/** Explaining ViT predictions: attention maps, rollout, gradient-weighted rollout, saliency. */
export * from './rollout.js';
export * from './maps.js';
export * from './probe.js';
export * from './explain.js';
