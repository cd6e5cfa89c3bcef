/**
 * `tessera convert --checkpoint C --to timm|hf|torchvision --out PATH`: rewrites a checkpoint in
 * another framework's layout. C is anything tessera reads: a tessera/timm .safetensors, a
 * .pth/.bin state dict, a Hugging Face or timm hub directory, a hub id (timm/…, hf:org/name), or
 * a float32 .onnx file tessera exported (its initializers keep the timm names). A whole CLIP (a
 * `pretrain --method clip` run's checkpoint, an OpenAI/open_clip state dict, an HF CLIPModel
 * directory) converts `--to openai` (a bare state dict) or `--to hf` (a CLIPModel directory),
 * with its tokenizer files when they are beside it.
 */
import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { exportCheckpoint, LAYOUTS } from '../checkpoint/convert.js';
import { downloadCheckpoint, parseHubId } from '../checkpoint/hub.js';
import { fromTimm, loadForeignCheckpoint, type LayoutName } from '../checkpoint/layouts.js';
import { isOnnxPath } from '../runtime/onnx_model.js';
import { sharedOption } from './common_options.js';
import { modelFromOnnx } from './load_for_inference.js';
import { positiveInt } from './parse.js';
import { UsageError } from './output.js';
import { isClipWithText } from '../train/clip_start.js';
import { loadClip, writeClip } from '../checkpoint/layout_clip.js';
import { ClipTokenizer, TokenizerError } from '../text/clip_tokenizer.js';

interface ConvertFlags { checkpoint: string; to: LayoutName | 'openai'; out: string; model?: string; numHeads?: number; json?: boolean }

export function registerConvertCommand(program: Command): void {
  program.command('convert')
    .description('write a checkpoint in timm, Hugging Face or torchvision layout (so it loads in Python)')
    .requiredOption('--checkpoint <path|id>', 'a .safetensors/.pth/.bin file, a Hugging Face or timm hub directory, a hub id (timm/NAME, hf:ORG/NAME), or a float32 .onnx file tessera exported')
    .addOption(new Option('--to <layout>', 'target layout; a whole CLIP: openai (OpenAI/open_clip state dict) or hf (CLIPModel directory)').choices([...LAYOUTS, 'openai']).makeOptionMandatory())
    .requiredOption('--out <path>', 'hf: a directory; torchvision: a .pth (or .safetensors) file; timm: a .safetensors/.pth file or a directory; openai: a .safetensors or .pt/.pth/.bin file')
    .addOption(sharedOption('model', { description: 'registered architecture, for files whose weights do not say the number of attention heads' }))
    .option('--num-heads <n>', 'attention heads, for files whose weights do not say it', positiveInt('--num-heads'))
    .addOption(sharedOption('json'))
    .action(async (f: ConvertFlags) => {
      const hub = existsSync(f.checkpoint) ? undefined : parseHubId(f.checkpoint);
      const src = hub ? await downloadCheckpoint(hub.repo, { revision: hub.revision }) : f.checkpoint;
      if (isClipWithText(src)) return convertClip(f, src);
      if (f.to === 'openai') throw new UsageError(`--to openai writes a whole CLIP (image and text towers); ${f.checkpoint} is not one`);
      const ckpt = isOnnxPath(src) ? fromOnnx(src) : loadForeignCheckpoint(src, { model: f.model, numHeads: f.numHeads });
      const result = exportCheckpoint(ckpt, f.to as LayoutName, f.out);
      if (f.json) {
        console.log(JSON.stringify({ from: ckpt.layout, ...result, config: ckpt.config, dropped: ckpt.dropped }));
        return;
      }
      console.log(`${f.checkpoint} (${ckpt.layout} layout) → ${f.to}: ${result.files.join(', ')}`);
      if (ckpt.dropped.length) console.log(`not carried over (no weights of the model): ${ckpt.dropped.join(', ')}`);
      console.log(`in Python: ${result.usage}`);
    });
}

/** An exported .onnx file read as the tessera checkpoint it came from (timm keys, tessera metadata). */
function fromOnnx(path: string) {
  const { model, meta } = modelFromOnnx(path, 'convert');
  const raw = new Map(model.namedState().map(([k, p]) => [k, { dtype: 'F32' as const, shape: [...p.shape], bytes: new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength) }]));
  return fromTimm(raw, path, { tessera: JSON.stringify(meta) }, undefined, {});
}

/** A whole CLIP → OpenAI's bare state dict or an HF CLIPModel directory, with the tokenizer files found beside it. */
function convertClip(f: ConvertFlags, src: string): void {
  if (f.to !== 'openai' && f.to !== 'hf') throw new UsageError(`${f.checkpoint} is a whole CLIP: convert it --to openai or --to hf, not ${f.to}`);
  const { model, checkpoint } = loadClip(src);
  let tokenizer: ClipTokenizer | undefined;
  try {
    tokenizer = ClipTokenizer.find(checkpoint.folder);
  } catch (e) {
    if (!(e instanceof TokenizerError)) throw e;
  }
  const files: string[] = [];
  writeClip(model, f.to, f.out, tokenizer, files);
  if (f.json) {
    console.log(JSON.stringify({ from: checkpoint.layout, layout: f.to, files, config: checkpoint.config, dropped: checkpoint.dropped, tokenizer: tokenizer?.source ?? null }));
    return;
  }
  console.log(`${f.checkpoint} (CLIP, ${checkpoint.layout} layout) → ${f.to}: ${files.join(', ')}`);
  if (!tokenizer) console.log(`no tokenizer files beside ${src}: only the weights were written`);
  console.log(f.to === 'hf' ? `in Python: transformers.CLIPModel.from_pretrained('${f.out}')` : `in Python: a state dict of OpenAI CLIP's model.py (clip.model.build_model(state_dict))${/\.safetensors$/i.test(f.out) ? ' via safetensors.torch.load_file' : ' via torch.load'}`);
}
