/** Modules with timm's parameter names: the building blocks of the ViT family. */
export { Module, Parameter, StateDictError, type StateDict, type StateTensor } from './module.js';
export { Linear, LayerNorm, Conv2d, Identity } from './layers.js';
export { PatchEmbed } from './patch_embed.js';
export { Attention, Mlp, Block, type AttentionOptions, type BlockOptions } from './transformer.js';
export { dropPathRates, dropPathScales, dropoutScales } from './drop_path.js';
export * as init from './init.js';
export { ConvStemEmbed } from './conv_stem.js';
