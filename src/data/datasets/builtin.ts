/**
 * The built-in datasets: where their files come from (the URLs and MD5s torchvision uses; for CIFAR
 * the binary versions from the authors' page) and how each split is read.
 */
import { join } from 'node:path';
import { CIFAR10_FILES, CIFAR100_FILES, loadCifar10Split, loadCifar100Split } from './cifar.js';
import type { TensorDataset } from './dataset.js';
import { loadIdxSplit } from './idx.js';
import { resolveDatasetDir, type DatasetSource, type ResolveOptions } from './resolve.js';

export type Split = 'train' | 'test';

interface IdxDataset {
  format: 'idx';
  /** Directory URL the four files live under. */
  baseUrl: string;
  md5: Record<string, string>;
  classNames: readonly string[];
}

interface CifarDataset {
  format: 'cifar10' | 'cifar100';
  archive: DatasetSource;
  /** Folder the archive unpacks to, accepted when users extract it by hand. */
  archiveDir: string;
}

type BuiltinDataset = IdxDataset | CifarDataset;

const IDX_FILES: Record<Split, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
};

const cifar10Members = [...CIFAR10_FILES.train, ...CIFAR10_FILES.test, CIFAR10_FILES.meta];
const cifar100Members = [...CIFAR100_FILES.train, ...CIFAR100_FILES.test, CIFAR100_FILES.meta];

const BUILTIN: Record<string, BuiltinDataset> = {
  'fashion-mnist': {
    format: 'idx',
    baseUrl: 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    md5: {
      'train-images-idx3-ubyte.gz': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
      'train-labels-idx1-ubyte.gz': '25c81989df183df01b3e8a0aad5dffbe',
      't10k-images-idx3-ubyte.gz': 'bef4ecab320f06d8554ea6380940ec79',
      't10k-labels-idx1-ubyte.gz': 'bb300cfdad3c16e7a12a480ee83cd310',
    },
    classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  },
  mnist: {
    format: 'idx',
    baseUrl: 'https://ossci-datasets.s3.amazonaws.com/mnist/',
    md5: {
      'train-images-idx3-ubyte.gz': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
      'train-labels-idx1-ubyte.gz': 'd53e105ee54ea40749a09fcbcd1e9432',
      't10k-images-idx3-ubyte.gz': '9fb629c4189551a2d022fa330f9573f3',
      't10k-labels-idx1-ubyte.gz': 'ec29112dd5afa0611ce80d1b7f02629c',
    },
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  },
  cifar10: {
    format: 'cifar10',
    archive: {
      file: 'cifar-10-binary.tar.gz',
      url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
      md5: 'c32a1d4ab5d03f1284b67883e8d87530',
      extract: cifar10Members,
    },
    archiveDir: 'cifar-10-batches-bin',
  },
  cifar100: {
    format: 'cifar100',
    archive: {
      file: 'cifar-100-binary.tar.gz',
      url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
      md5: '03b5dce01913d631647c71ecec9e9cb8',
      extract: cifar100Members,
    },
    archiveDir: 'cifar-100-binary',
  },
};

export function builtinDatasetNames(): string[] {
  return Object.keys(BUILTIN);
}

/** The class names a built-in dataset knows without its files (the IDX sets'); CIFAR's are in its archive. */
export function builtinClassNames(name: string): readonly string[] | undefined {
  const d = Object.hasOwn(BUILTIN, name) ? BUILTIN[name] : undefined;
  return d?.format === 'idx' ? d.classNames : undefined;
}

export function isBuiltinDataset(name: string): boolean {
  return Object.hasOwn(BUILTIN, name);
}

/** The files one split needs, as a request for the resolver. */
function splitRequest(name: string, spec: BuiltinDataset, split: Split) {
  const what = `${name} ${split} split`;
  if (spec.format === 'idx') {
    const { images, labels } = IDX_FILES[split];
    const sources = [images, labels].map((file) => ({ file, url: spec.baseUrl + file, md5: spec.md5[file]! }));
    return { name, what, files: [images, labels], sources };
  }
  const files = spec.format === 'cifar10' ? CIFAR10_FILES : CIFAR100_FILES;
  return { name, what, files: [...files[split], files.meta], sources: [spec.archive], subdirs: [spec.archiveDir] };
}

/**
 * Loads one split of a built-in dataset, finding or downloading its files (see resolve.ts).
 * @example await loadBuiltinDataset('fashion-mnist', 'train', { dataDir: 'data', onProgress })
 */
export async function loadBuiltinDataset(name: string, split: Split, opts: ResolveOptions = {}): Promise<TensorDataset> {
  const spec = Object.hasOwn(BUILTIN, name) ? BUILTIN[name] : undefined;
  if (!spec) {
    throw new Error(`unknown dataset '${name}', expected one of ${builtinDatasetNames().join(', ')} or a path to an image folder or manifest`);
  }
  if (split !== 'train' && split !== 'test') throw new Error(`unknown split '${split as string}' for ${name}, expected train or test`);
  const dir = await resolveDatasetDir(splitRequest(name, spec, split), opts);
  switch (spec.format) {
    case 'idx': {
      const { images, labels } = IDX_FILES[split];
      return loadIdxSplit(join(dir, images), join(dir, labels), { name: `${name}/${split}`, classNames: spec.classNames });
    }
    case 'cifar10':
      return loadCifar10Split(dir, split);
    case 'cifar100':
      return loadCifar100Split(dir, split);
  }
}
