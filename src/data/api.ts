/** Datasets and loaders: built-in tensor datasets, image folders/manifests, decoding and transforms. */
export { loadBuiltinDataset, builtinDatasetNames, isBuiltinDataset, type Split } from './builtin.js';
export { sliceDataset, selectClasses, type TensorDataset } from './dataset.js';
export { TensorLoader, type Batch, type TensorLoaderOptions, type AugmentOptions } from './tensor_loader.js';
export { epochOrder, type BatchSource } from './batch_source.js';
export { openImageDataset, describeDataset, stratifiedSplit, IMAGE_EXTENSIONS, DatasetError, type ImageDataset, type ImageSamples, type OpenImageDatasetOptions } from './folder_dataset.js';
export { createImageLoader, ImageLoader, ImageDecodeFailure, type ImageLoaderOptions, type SkippedFile } from './image_loader.js';
export { imageAugmentSchema, resolveImageTransform, type EvalTransform, type ImageAugmentOptions, type ImageTransformOptions, type Interpolation } from './transform_config.js';
export { mixupSchema, applyMixup, mixedTargets, type MixupOptions } from './mixup.js';
export { parseRandAugment, type RandAugmentConfig } from './rand_augment.js';
export { loadImageForModel, ImageDecodeError } from './image.js';
