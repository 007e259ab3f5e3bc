/**
 * A 3x3 convolution with bias and ReLU, computed directly in float64 from NHWC images: the reference the
 * backbone tests compare their small models with. `weight(c, ci, ky, kx)` reads the kernel in whatever
 * layout the model format stores it; `pad` zero pixels surround the image. Returns [n, out, out, C].
 */
export function conv3x3ReluReference(
  images: Float32Array,
  n: number,
  options: {
    side: number;
    channels: number;
    stride: number;
    pad: number;
    weight: (c: number, ci: number, ky: number, kx: number) => number;
    bias: Float32Array;
  },
): Float32Array {
  const { side, channels, stride, pad, weight, bias } = options;
  const out = Math.floor((side + 2 * pad - 3) / stride) + 1;
  const result = new Float32Array(n * out * out * channels);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < out; y++)
      for (let x = 0; x < out; x++)
        for (let c = 0; c < channels; c++) {
          let sum = bias[c]!;
          for (let ci = 0; ci < 3; ci++)
            for (let ky = 0; ky < 3; ky++)
              for (let kx = 0; kx < 3; kx++) {
                const iy = y * stride + ky - pad;
                const ix = x * stride + kx - pad;
                if (iy < 0 || ix < 0 || iy >= side || ix >= side) continue;
                sum += weight(c, ci, ky, kx) * images[((b * side + iy) * side + ix) * 3 + ci]!;
              }
          result[((b * out + y) * out + x) * channels + c] = Math.max(0, sum);
        }
  return result;
}
