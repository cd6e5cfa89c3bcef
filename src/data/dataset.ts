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
