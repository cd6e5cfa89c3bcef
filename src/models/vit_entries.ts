/** Registered ViT and DeiT architectures with their pretrained-style preprocessing configs. */
import type { ModelEntry, PretrainedConfig } from './registry.js';
import type { VitConfig } from './vit.js';
import './vit.js'; // registers the family

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];
const INCEPTION = [0.5, 0.5, 0.5];

const imagenet = (size: number, over: Partial<PretrainedConfig> = {}): PretrainedConfig => ({
  inputSize: [3, size, size], mean: INCEPTION, std: INCEPTION, interpolation: 'bicubic', cropPct: size === 224 ? 0.9 : 1.0, numClasses: 1000, ...over,
});
const deit = (over: Partial<PretrainedConfig> = {}) => imagenet(224, { mean: IMAGENET_MEAN, std: IMAGENET_STD, cropPct: 0.875, ...over });

export const vitEntries: ModelEntry[] = [];
function vit(name: string, config: Partial<VitConfig>, pretrained: PretrainedConfig, description?: string) {
  vitEntries.push({ name, family: 'vit', config, pretrained, description, params: TIMM_PARAMS[name] });
}

/** Parameter counts of timm's models at 1,000 classes (timm 1.0, instantiated), which the registry test checks. */
const TIMM_PARAMS: Record<string, number> = {
  vit_tiny_patch16_224: 5_717_416,
  vit_small_patch16_224: 22_050_664,
  vit_base_patch16_224: 86_567_656,
  vit_large_patch16_224: 304_326_632,
  vit_tiny_patch16_384: 5_790_376,
  vit_small_patch16_384: 22_196_584,
  vit_base_patch16_384: 86_859_496,
  vit_small_patch32_224: 22_878_952,
  vit_base_patch32_224: 88_224_232,
  deit_tiny_patch16_224: 5_717_416,
  deit_small_patch16_224: 22_050_664,
  deit_base_patch16_224: 86_567_656,
  deit_tiny_distilled_patch16_224: 5_910_800,
  deit_small_distilled_patch16_224: 22_436_432,
  deit_base_distilled_patch16_224: 87_338_192,
};

//  name                              patch          dim             depth      heads                          preprocessing
vit('vit_tiny_patch16_224', { patchSize: 16, embedDim: 192, depth: 12, numHeads: 3 }, imagenet(224));
vit('vit_small_patch16_224', { patchSize: 16, embedDim: 384, depth: 12, numHeads: 6 }, imagenet(224));
vit('vit_base_patch16_224', { patchSize: 16, embedDim: 768, depth: 12, numHeads: 12 }, imagenet(224));
vit('vit_large_patch16_224', { patchSize: 16, embedDim: 1024, depth: 24, numHeads: 16 }, imagenet(224));
vit('vit_tiny_patch16_384', { imgSize: 384, patchSize: 16, embedDim: 192, depth: 12, numHeads: 3 }, imagenet(384));
vit('vit_small_patch16_384', { imgSize: 384, patchSize: 16, embedDim: 384, depth: 12, numHeads: 6 }, imagenet(384));
vit('vit_base_patch16_384', { imgSize: 384, patchSize: 16, embedDim: 768, depth: 12, numHeads: 12 }, imagenet(384));
vit('vit_small_patch32_224', { patchSize: 32, embedDim: 384, depth: 12, numHeads: 6 }, imagenet(224));
vit('vit_base_patch32_224', { patchSize: 32, embedDim: 768, depth: 12, numHeads: 12 }, imagenet(224));
vit('deit_tiny_patch16_224', { patchSize: 16, embedDim: 192, depth: 12, numHeads: 3 }, deit());
vit('deit_small_patch16_224', { patchSize: 16, embedDim: 384, depth: 12, numHeads: 6 }, deit());
vit('deit_base_patch16_224', { patchSize: 16, embedDim: 768, depth: 12, numHeads: 12 }, deit());
vit('deit_tiny_distilled_patch16_224', { patchSize: 16, embedDim: 192, depth: 12, numHeads: 3, distilled: true }, deit());
vit('deit_small_distilled_patch16_224', { patchSize: 16, embedDim: 384, depth: 12, numHeads: 6, distilled: true }, deit());
vit('deit_base_distilled_patch16_224', { patchSize: 16, embedDim: 768, depth: 12, numHeads: 12, distilled: true }, deit());

// Small-image presets.
vit('vit_tiny_patch4_28', { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 96, depth: 6, numHeads: 3, mlpRatio: 2 },
  { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 },
  '28×28 grayscale (Fashion-MNIST, MNIST)');
vit('vit_tiny_convstem_patch4_28', { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 96, depth: 6, numHeads: 3, mlpRatio: 2, embedLayer: 'conv', stemWidth: 32 },
  { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 },
  '28×28 grayscale, convolutional stem (Xiao et al. 2021) instead of the patchify conv');
vit('vit_tiny_hybrid_patch4_28', { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 96, depth: 2, numHeads: 3, mlpRatio: 2, embedLayer: 'conv', stemWidth: 32, stemStrides: [2, 1, 2, 1, 1, 1], stemNorm: 'group' },
  { inputSize: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear', cropPct: 1, numClasses: 10 },
  '28×28 grayscale, six 3×3 convs with GroupNorm (14×14 then 7×7) before two transformer blocks');
vit('vit_tiny_patch4_32', { imgSize: 32, patchSize: 4, inChans: 3, numClasses: 10, embedDim: 192, depth: 9, numHeads: 3, mlpRatio: 2 },
  { inputSize: [3, 32, 32], mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], interpolation: 'bilinear', cropPct: 1, numClasses: 10 },
  '32×32 RGB (CIFAR-10/100)');
