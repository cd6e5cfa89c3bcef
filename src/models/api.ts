/** The ViT family: the model class, the registry of timm/DeiT names and small-image presets. */
export { VisionTransformer, vitDefaults, type VitConfig, type VitNoise, type VitOutput } from './vit.js';
export { createModel, getModelEntry, listModels, registerModel, type ModelEntry, type PretrainedConfig } from './registry.js';
export { resamplePosEmbed } from './pos_embed.js';
export { countFlops } from '../ir/flops.js';
