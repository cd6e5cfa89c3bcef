/** Datasets and loaders: built-in tensor datasets, image folders/manifests, decoding and transforms. */
export { loadBuiltinDataset, builtinDatasetNames, isBuiltinDataset, type Split } from './datasets/builtin.js';
export { sliceDataset, selectClasses, type TensorDataset } from './datasets/dataset.js';
export { TensorLoader, type Batch, type TensorLoaderOptions, type AugmentOptions } from './loader/tensor_loader.js';
export { epochOrder, type BatchSource } from './loader/batch_source.js';
export { openImageDataset, describeDataset, stratifiedSplit, IMAGE_EXTENSIONS, DatasetError, type ImageDataset, type ImageSamples, type OpenImageDatasetOptions } from './datasets/folder_dataset.js';
export { createImageLoader, ImageLoader, ImageDecodeFailure, type ImageLoaderOptions, type SkippedFile } from './loader/image_loader.js';
export { imageAugmentSchema, resolveImageTransform, type EvalTransform, type ImageAugmentOptions, type ImageTransformOptions, type Interpolation } from './transforms/transform_config.js';
export { mixupSchema, applyMixup, mixedTargets, type MixupOptions } from './transforms/mixup.js';
export { parseRandAugment, type RandAugmentConfig } from './transforms/rand_augment.js';
export { loadImageForModel, ImageDecodeError } from './image/image.js';
