/** Models: the model interface and family table, the registry of named architectures, the ViT family. */
export { ImageModel, registerFamily, getFamily, listFamilies, inferFamily, type CommonModelArgs, type ForwardOptions, type LayerGrouping, type ModelFamily, type ModelOutput, type NoiseInput, type TokenGrid } from './model.js';
export { VisionTransformer, vitDefaults, vitKwargsSchema, type VitConfig, type VitOutput } from './vit.js';
export { createModel, createFromConfig, getModelEntry, listModels, registerModel, type ModelArgs, type ModelEntry, type PretrainedConfig } from './registry.js';
export { resamplePosEmbed } from './pos_embed.js';
export { adaptInputConv } from './adapt_input.js';
export { countFlops } from '../ir/flops.js';
export { SwinTransformer, swinDefaults, swinCheckpointFilter, type SwinConfig } from './swin.js';
