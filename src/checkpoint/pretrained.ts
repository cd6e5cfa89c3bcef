/**
 * `--pretrained SPEC` for fine-tuning: SPEC is a local checkpoint (a tessera/timm .safetensors,
 * a .pth/.bin state dict, or a Hugging Face / timm hub directory) or a hub id
 * (`timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k`, `hf:google/vit-base-patch16-224`, with an
 * optional `@revision`). Whatever the layout, the result has timm keys and a tessera
 * CheckpointMeta (architecture, class names, preprocessing) for the trainer to fit the weights
 * to the new model (head, channels, image size).
 */
import { existsSync } from 'node:fs';
import { listModels } from '../models/registry.js';
import type { StateDict } from '../nn/module.js';
import type { CheckpointMeta } from './checkpoint.js';
import { downloadCheckpoint, HubError, parseHubId, type HubOptions } from './hub.js';
import { foreignMeta, loadForeignCheckpoint, type LayoutHints, type LayoutName } from './layouts.js';

export interface PretrainedOptions extends HubOptions, LayoutHints {}

export interface Pretrained {
  /** The spec as given. */
  source: string;
  /** Where the files were read (the hub snapshot directory for hub ids). */
  path: string;
  layout: LayoutName;
  /** timm keys. */
  state: StateDict;
  meta: CheckpointMeta;
  /** Known non-model keys set aside (HF pooler, buffers). */
  dropped: string[];
}

export async function loadPretrained(spec: string, opts: PretrainedOptions = {}): Promise<Pretrained> {
  const hub = existsSync(spec) ? undefined : parseHubId(spec);
  if (!hub && !existsSync(spec)) {
    throw new HubError(`--pretrained ${spec}: no such file or directory, and not a hub id (timm/<name>, hf:<org>/<name>)`);
  }
  const path = hub ? await downloadCheckpoint(hub.repo, { ...opts, revision: hub.revision ?? opts.revision }) : spec;
  // timm/<arch>.<tag>: the architecture name supplies what the weights cannot say (heads)
  const arch = hub?.repo.startsWith('timm/') ? hub.repo.slice(5).split('.')[0] : undefined;
  const model = opts.model ?? (arch && listModels().some((e) => e.name === arch) ? arch : undefined);
  const fc = loadForeignCheckpoint(path, { numHeads: opts.numHeads, model });
  if (!fc.modelName && hub) fc.modelName = hub.repo.startsWith('timm/') ? hub.repo.slice(5) : hub.repo;
  return { source: spec, path, layout: fc.layout, state: fc.stateDict, meta: foreignMeta(fc), dropped: fc.dropped };
}
