/** Checkpoints: tessera/timm safetensors, PyTorch .pth, Hugging Face and torchvision layouts, hub downloads. */
export { loadCheckpoint, saveCheckpoint, readStateDict, metaFor, CheckpointError, type CheckpointMeta, type LoadOptions } from './checkpoint.js';
export { loadPretrained, type Pretrained, type PretrainedOptions } from './pretrained.js';
export { convertCheckpoint, exportCheckpoint, LAYOUTS, type ConvertResult } from './convert.js';
