/**
 * A tessera architecture as the `--model` and `--model-kwargs` of timm's train.py, per family.
 * timm's entry functions merge the kwargs over the named model's own (`dict(model_args,
 * **kwargs)`), so for ViT, ConViT and Swin one timm name serves every size and every architecture
 * key is given. timm builds MobileViT (a ByobNet) from a named block config that --model-kwargs
 * cannot replace, so only tessera configs equal to one of timm's named MobileViTs translate.
 * Families timm lacks are refused in one line that says why.
 *
 * Checked against timm at commit aa4b5850c1543fa488abf260f18390eda46cf85d: the create_model
 * calls and strict state-dict loads of scripts/make_timm_job_fixture.py.
 */
import { getModelEntry, type ModelArgs } from '../models/registry.js';
import type { CommonModelArgs } from '../models/model.js';
import { mobilevitDefaults, mobilevitV2Config } from '../models/mobilevit.js';

/** A family's full config: the common args plus its own keys. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ModelConfig = CommonModelArgs & Record<string, any>;

export interface TimmArchitecture {
  name: string;
  kwargs: Record<string, unknown>;
  /**
   * create_model's global_pool, given apart from the kwargs: train.py passes its --gp as
   * global_pool itself, so the same key in --model-kwargs would be a duplicate argument.
   */
  globalPool?: string;
  /** timm's pretrained_cfg keys: the input conv (adapted to other channel counts) and the classifier. */
  firstConv: string;
  classifier: string;
}

/** Why timm's train.py cannot train a family at all. */
export const FAMILIES_TIMM_LACKS: Record<string, string> = {
  cvt: 'timm has no CvT (it is a Hugging Face CvtForImageClassification model)',
  clip: 'tessera\'s CLIP is the image-and-text model in OpenAI\'s layout, trained contrastively on image-text pairs (open_clip); timm\'s train.py trains image classifiers',
  mae: 'timm\'s train.py has no masked-autoencoder pretraining (to fine-tune one, give its checkpoint as --pretrained with a ViT --model: the job starts from its encoder)',
};

/** The keys of a MobileViT config that timm's named block configs fix (the rest are create_model arguments). */
const MOBILEVIT_ARCH = ['version', 'stemChs', 'channels', 'strides', 'depths', 'bottleRatios', 'transformerDepths', 'transformerDims',
  'transformerRatio', 'patchSize', 'numHeads', 'mlpRatio', 'numFeatures'] as const;

/** timm's MobileViTs: v1 as tessera registers them, v2 at every multiplier timm has. */
function timmMobilevits(): [string, ModelArgs][] {
  const v1 = ['mobilevit_xxs', 'mobilevit_xs', 'mobilevit_s'].map((n) => [n, getModelEntry(n).config] as [string, ModelArgs]);
  const v2 = ([['050', 0.5], ['075', 0.75], ['100', 1], ['125', 1.25], ['150', 1.5], ['175', 1.75], ['200', 2]] as const)
    .map(([s, m]) => [`mobilevitv2_${s}`, mobilevitV2Config(m)] as [string, ModelArgs]);
  return [...v1, ...v2];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * timm's model name and kwargs for a tessera model of `family` with the full `config` (the
 * family's defaults filled in); `label` names the model in the error when timm cannot build it.
 * The channels, classes and drop rates are train.py flags of their own; the image size is a
 * kwarg, since train.py builds the model without its --img-size (a ViT's position table, a Swin's
 * windows and patch-size check depend on it).
 */
export function timmArchitecture(family: string, config: ModelConfig, label: string): TimmArchitecture {
  const refuse = (what: string): never => { throw new Error(`${label}: ${what}`); };
  if (FAMILIES_TIMM_LACKS[family]) refuse(`timm cannot build the ${family} family: ${FAMILIES_TIMM_LACKS[family]}`);
  const c = config;
  const arch = architectureOf(family, c, refuse);
  return { ...arch, kwargs: { img_size: c.imgSize, ...arch.kwargs } };
}

function architectureOf(family: string, c: ModelConfig, refuse: (what: string) => never): TimmArchitecture {
  if (family === 'vit') {
    if (c.embedLayer !== 'patch') refuse('the 3×3-conv stem has no timm equivalent (timm\'s ViT takes its patch embedding as a class, which --model-kwargs cannot pass, and its hybrids use ResNet or BatchNorm stems)');
    if (c.attnType !== 'softmax') refuse(`${c.attnType} attention has no timm VisionTransformer equivalent`);
    if (c.eps !== 1e-6) refuse(`LayerNorm eps ${c.eps} has no timm VisionTransformer equivalent (timm's is 1e-6)`);
    if (c.tomeR) refuse('token merging (tome_r) has no timm VisionTransformer equivalent');
    return {
      // a distilled DeiT is timm's VisionTransformerDistilled, which takes the same kwargs
      name: c.distilled ? 'deit_base_distilled_patch16_224' : 'vit_base_patch16_224',
      kwargs: {
        patch_size: c.patchSize, embed_dim: c.embedDim, depth: c.depth, num_heads: c.numHeads, mlp_ratio: c.mlpRatio,
        qkv_bias: c.qkvBias, class_token: c.classToken, no_embed_class: c.noEmbedClass,
      },
      globalPool: c.globalPool,
      firstConv: 'patch_embed.proj',
      classifier: 'head',
    };
  }
  if (family === 'swin') {
    if (c.eps !== 1e-5) refuse(`LayerNorm eps ${c.eps} has no timm SwinTransformer equivalent (timm's is nn.LayerNorm's 1e-5)`);
    return {
      name: 'swin_tiny_patch4_window7_224',
      kwargs: {
        patch_size: c.patchSize, window_size: c.windowSize, embed_dim: c.embedDim, depths: [...c.depths], num_heads: [...c.numHeads],
        mlp_ratio: c.mlpRatio, qkv_bias: c.qkvBias,
      },
      firstConv: 'patch_embed.proj',
      classifier: 'head.fc',
    };
  }
  if (family === 'convit') {
    return {
      name: 'convit_tiny',
      kwargs: {
        patch_size: c.patchSize, embed_dim: c.embedDim, depth: c.depth, num_heads: c.numHeads, mlp_ratio: c.mlpRatio, qkv_bias: c.qkvBias,
        local_up_to_layer: c.localUpToLayer, locality_strength: c.localityStrength, use_pos_embed: c.usePosEmbed,
      },
      globalPool: c.globalPool,
      firstConv: 'patch_embed.proj',
      classifier: 'head',
    };
  }
  if (family === 'mobilevit') {
    const match = timmMobilevits().find(([, m]) => MOBILEVIT_ARCH.every((k) => same({ ...mobilevitDefaults, ...m }[k], c[k])));
    if (!match) return refuse(`timm builds MobileViT from its named block configs only (${timmMobilevits().map(([n]) => n).join(', ')}), and this one's stages are none of them`);
    return { name: match[0], kwargs: c.zeroInitLast === false ? { zero_init_last: false } : {}, firstConv: 'stem.conv', classifier: 'head.fc' };
  }
  return refuse(`the ${family} family has no timm equivalent tessera knows`);
}
