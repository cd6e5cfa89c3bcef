/**
 * timm's `adapt_input_conv`: a pretrained 3-channel input convolution fitted to another channel
 * count. One channel gets the sum over the RGB filters; other counts tile the filters and rescale
 * by 3 / channels, so the response to a constant image keeps its size.
 */
export function adaptInputConv(weight: Float32Array, shape: readonly number[], inChans: number): { data: Float32Array; shape: number[] } {
  const [o, c, kh, kw] = shape as [number, number, number, number];
  if (c === inChans) return { data: weight, shape: [...shape] };
  const k = kh * kw;
  const out = new Float32Array(o * inChans * k);
  for (let oc = 0; oc < o; oc++) {
    for (let ic = 0; ic < inChans; ic++) {
      for (let j = 0; j < k; j++) {
        if (inChans === 1) {
          let s = 0;
          for (let src = 0; src < c; src++) s += weight[(oc * c + src) * k + j]!;
          out[(oc * inChans + ic) * k + j] = s;
        } else {
          out[(oc * inChans + ic) * k + j] = (weight[(oc * c + (ic % c)) * k + j]! * c) / inChans;
        }
      }
    }
  }
  return { data: out, shape: [o, inChans, kh, kw] };
}
