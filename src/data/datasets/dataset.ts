/** In-memory labelled image datasets (the built-in tensor datasets: MNIST, Fashion-MNIST, CIFAR). */

export interface TensorDataset {
  /** e.g. 'fashion-mnist/train' */
  readonly name: string;
  /** uint8 pixels, N × C × H × W (channel-major per image, as CIFAR's binary format stores them). */
  readonly images: Uint8Array;
  /** Class index per image. */
  readonly labels: Uint8Array | Uint16Array;
  /** [C, H, W] */
  readonly imageShape: readonly [number, number, number];
  readonly classNames: readonly string[];
  readonly length: number;
}

/** A view of the first `n` images (e.g. a 2,000-image slice for a quick run). */
export function sliceDataset(ds: TensorDataset, start: number, end: number): TensorDataset {
  const per = ds.imageShape[0] * ds.imageShape[1] * ds.imageShape[2];
  const s = Math.max(0, Math.min(start, ds.length));
  const e = Math.max(s, Math.min(end, ds.length));
  return {
    ...ds,
    name: `${ds.name}[${s}:${e}]`,
    images: ds.images.subarray(s * per, e * per),
    labels: ds.labels.subarray(s, e),
    length: e - s,
  };
}

/** Keeps the images of `classes` (indices into classNames), relabelled 0..k−1 in the given order. */
export function selectClasses(ds: TensorDataset, classes: readonly number[]): TensorDataset {
  const bad = classes.filter((c) => !(Number.isInteger(c) && c >= 0 && c < ds.classNames.length));
  if (bad.length) throw new RangeError(`classes ${bad.join(', ')} do not exist in ${ds.name} (it has ${ds.classNames.length} classes)`);
  const relabel = new Map(classes.map((c, i) => [c, i]));
  const per = ds.imageShape[0] * ds.imageShape[1] * ds.imageShape[2];
  const keep: number[] = [];
  for (let i = 0; i < ds.length; i++) if (relabel.has(ds.labels[i]!)) keep.push(i);
  const images = new Uint8Array(keep.length * per);
  const labels = new Uint8Array(keep.length);
  keep.forEach((src, i) => {
    images.set(ds.images.subarray(src * per, (src + 1) * per), i * per);
    labels[i] = relabel.get(ds.labels[src]!)!;
  });
  return { ...ds, name: `${ds.name}{${classes.join(',')}}`, images, labels, classNames: classes.map((c) => ds.classNames[c]!), length: keep.length };
}
