/**
 * torchvision's evaluation transform for PIL images — Resize(shorter side) → CenterCrop → ToTensor →
 * Normalize — applied to images decoded with sharp. The resize is a port of Pillow's Resample.c
 * (antialiased convolution with fixed-point 8-bit passes, horizontal then vertical), so for the same
 * decoded pixels the output equals torchvision's bit for bit; see test/preprocess.test.ts.
 *
 * Decoding follows torchvision's default loader (`Image.open(f).convert('RGB')`): no EXIF rotation, alpha
 * dropped, grey replicated, embedded ICC profiles ignored. Known deviation: CMYK JPEGs are converted by
 * libvips' colour management, not by Pillow's naive formula.
 */
import sharp from 'sharp';
import { InputError } from '../util/errors';
import type { Box } from './dataset';

export type Interpolation = 'bilinear' | 'bicubic';

export interface PreprocessPreset {
  /** 'shorter-side': torchvision's Resize(int), aspect kept; 'stretch': both sides to `resizeTo`. */
  resize: 'shorter-side' | 'stretch';
  resizeTo: number;
  /** Side of the centre crop; at most `resizeTo`. */
  cropSize: number;
  interpolation: Interpolation;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

function imagenet(
  resizeTo: number,
  cropSize: number,
  interpolation: Interpolation = 'bilinear',
): PreprocessPreset {
  return {
    resize: 'shorter-side',
    resizeTo,
    cropSize,
    interpolation,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
  };
}

/** The `transforms` of the torchvision weights each backbone is loaded with (crop, resize, interpolation). */
export const PRESETS = {
  resnet34: imagenet(256, 224), // ResNet34_Weights.IMAGENET1K_V1
  resnet50: imagenet(256, 224), // ResNet50_Weights.IMAGENET1K_V1
  resnet50_v2: imagenet(232, 224), // ResNet50_Weights.IMAGENET1K_V2 (torchvision's DEFAULT)
  densenet121: imagenet(256, 224), // DenseNet121_Weights.IMAGENET1K_V1
  convnext_tiny: imagenet(236, 224), // ConvNeXt_Tiny_Weights.IMAGENET1K_V1
  convnext_large: imagenet(232, 224), // ConvNeXt_Large_Weights.IMAGENET1K_V1
  // Swin_V2_S_Weights.IMAGENET1K_V1. At its 256 px crop the last map is 8x8x768 (patch 4, three 2x merges:
  // 256 / 32), not the 7x7 the paper's 224 px figures suggest; infra/export_backbones.py exports that map.
  swin_v2_s: imagenet(260, 256, 'bicubic'),
  vit_b_16: imagenet(256, 224), // ViT_B_16_Weights.IMAGENET1K_V1
  // nsfwjs' MobileNetV2 (tfjs) takes the whole image squeezed to 224x224, values in [0, 1].
  mobilenet_v2_tfjs: {
    resize: 'stretch',
    resizeTo: 224,
    cropSize: 224,
    interpolation: 'bilinear',
    mean: [0, 0, 0],
    std: [1, 1, 1],
  },
} as const satisfies Record<string, PreprocessPreset>;

export type PresetName = keyof typeof PRESETS;

/** 8-bit RGB pixels, row-major, 3 interleaved channels. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** How the crop sits in the original image: crop pixel (x, y) covers image x in [(x + cropLeft) * scaleX, ...). */
export interface CropGeometry {
  imageWidth: number;
  imageHeight: number;
  resizedWidth: number;
  resizedHeight: number;
  /** Top-left corner of the crop, in resized pixels. */
  cropLeft: number;
  cropTop: number;
  cropSize: number;
  /** Original pixels per resized pixel. */
  scaleX: number;
  scaleY: number;
}

export interface PreprocessedImage {
  /** Normalised values, HWC (height = width = cropSize, 3 channels): one NHWC batch entry. */
  data: Float32Array;
  height: number;
  width: number;
  channels: 3;
  geometry: CropGeometry;
}

export class ImageDecodeError extends InputError {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: cannot decode image: ${reason}`);
    this.name = 'ImageDecodeError';
  }
}

/** Decodes an image file to 8-bit RGB as torchvision's default loader does. */
export async function decodeRgb(file: string): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(file, { failOn: 'truncated', ignoreIcc: true, autoOrient: false })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
    };
  } catch (error) {
    throw new ImageDecodeError(file, (error as Error).message);
  }
}

export async function preprocessImage(
  file: string,
  preset: PreprocessPreset | PresetName,
): Promise<PreprocessedImage> {
  return preprocessRgb(await decodeRgb(file), preset);
}

/** Output size of the resize step, as torchvision computes it (the long side truncated, not rounded). */
export function resizedSize(
  width: number,
  height: number,
  preset: PreprocessPreset,
): [width: number, height: number] {
  const size = preset.resizeTo;
  if (preset.resize === 'stretch') return [size, size];
  return width <= height
    ? [size, Math.trunc((size * height) / width)]
    : [Math.trunc((size * width) / height), size];
}

/** Python's round(): halves go to the even neighbour, as in torchvision's center_crop offsets. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const frac = x - floor;
  if (frac !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

export function cropGeometry(width: number, height: number, preset: PreprocessPreset): CropGeometry {
  if (preset.cropSize > preset.resizeTo) {
    throw new Error(
      `preset crop ${preset.cropSize} exceeds its resize ${preset.resizeTo}: padding is not supported`,
    );
  }
  const [resizedWidth, resizedHeight] = resizedSize(width, height, preset);
  return {
    imageWidth: width,
    imageHeight: height,
    resizedWidth,
    resizedHeight,
    cropLeft: roundHalfEven((resizedWidth - preset.cropSize) / 2),
    cropTop: roundHalfEven((resizedHeight - preset.cropSize) / 2),
    cropSize: preset.cropSize,
    scaleX: width / resizedWidth,
    scaleY: height / resizedHeight,
  };
}

/** The preset's resize and centre crop of an image: its pixels, uint8 HWC, before normalisation. */
export function cropPixels(image: RgbImage, preset: PreprocessPreset): Uint8ClampedArray {
  return resizeAndCrop(image, cropGeometry(image.width, image.height, preset), FILTERS[preset.interpolation]);
}

export function preprocessRgb(
  image: RgbImage,
  presetOrName: PreprocessPreset | PresetName,
): PreprocessedImage {
  const preset = typeof presetOrName === 'string' ? PRESETS[presetOrName] : presetOrName;
  const geometry = cropGeometry(image.width, image.height, preset);
  const pixels = resizeAndCrop(image, geometry, FILTERS[preset.interpolation]);
  const lut = normalisationTable(preset);
  const data = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i += 3) {
    data[i] = lut[pixels[i]!]!;
    data[i + 1] = lut[256 + pixels[i + 1]!]!;
    data[i + 2] = lut[512 + pixels[i + 2]!]!;
  }
  return { data, height: preset.cropSize, width: preset.cropSize, channels: 3, geometry };
}

/**
 * ToTensor then Normalize, both in float32 as torch computes them: ((v / 255) - mean) / std with each
 * operation rounded to float32, tabulated per channel and byte value (channel-major, 3 x 256).
 */
export function normalisationTable(preset: PreprocessPreset): Float32Array {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(preset.mean[c]!);
    const std = Math.fround(preset.std[c]!);
    for (let v = 0; v < 256; v++)
      table[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
  }
  return table;
}

// ---------------------------------------------------------------- Pillow's resampling (Resample.c)

interface Filter {
  support: number;
  kernel: (x: number) => number;
}

const FILTERS: Record<Interpolation, Filter> = {
  bilinear: {
    support: 1,
    kernel: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    support: 2,
    kernel: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  /** Per output pixel: first input pixel and number of taps. */
  first: Int32Array;
  count: Int32Array;
  /** Fixed-point weights, `ksize` slots per output pixel. */
  weights: Int32Array;
  ksize: number;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for resizing `inSize` to `outSize`. */
function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      k[x] = filter.kernel((x + xmin - center + 0.5) * ss);
      ww += k[x]!;
    }
    for (let x = 0; x < n; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = Math.trunc(
        w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS),
      );
    }
    first[xx] = xmin;
    count[xx] = n;
  }
  return { first, count, weights, ksize };
}

/** Source indices [first, end) that output positions [p0, p0 + n) read. */
function sourceSpan(co: Coefficients, p0: number, n: number): [first: number, end: number] {
  let first = Number.POSITIVE_INFINITY;
  let end = 0;
  for (let p = p0; p < p0 + n; p++) {
    first = Math.min(first, co.first[p]!);
    end = Math.max(end, co.first[p]! + co.count[p]!);
  }
  return [first, end];
}

// Both passes compute clip8(half + sum of taps) as Pillow does, in int32 (the weights leave two bits of
// headroom, so sums never overflow); `>> PRECISION_BITS` stored into a Uint8ClampedArray is Pillow's clip8.
const HALF = 1 << (PRECISION_BITS - 1);

/**
 * Pillow's ImagingResampleHorizontal_8bpc for output columns [p0, p0 + n) of `lines` rows, written
 * densely (n * 3 bytes a row). Source rows are `srcRow` bytes apart; column `srcFirst` is at byte 0.
 */
function resampleHorizontal(
  src: Uint8Array | Uint8ClampedArray,
  srcRow: number,
  srcFirst: number,
  lines: number,
  dst: Uint8ClampedArray,
  p0: number,
  n: number,
  co: Coefficients,
): void {
  const { first, count, weights, ksize } = co;
  let out = 0;
  for (let line = 0; line < lines; line++) {
    const rowStart = line * srcRow - srcFirst * 3;
    for (let p = p0; p < p0 + n; p++) {
      let at = rowStart + first[p]! * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = p * ksize, end = k + count[p]!; k < end; k++, at += 3) {
        const w = weights[k]!;
        r = (r + Math.imul(src[at]!, w)) | 0;
        g = (g + Math.imul(src[at + 1]!, w)) | 0;
        b = (b + Math.imul(src[at + 2]!, w)) | 0;
      }
      dst[out++] = r >> PRECISION_BITS;
      dst[out++] = g >> PRECISION_BITS;
      dst[out++] = b >> PRECISION_BITS;
    }
  }
}

/**
 * Pillow's ImagingResampleVertical_8bpc for output rows [p0, p0 + n), each `rowBytes` bytes, written
 * densely. Source rows are `srcRow` bytes apart; row `srcFirst` is at byte 0. Each tap is added for a
 * whole row at a time, which reads memory in order; integer sums do not depend on the order.
 */
function resampleVertical(
  src: Uint8Array | Uint8ClampedArray,
  srcRow: number,
  srcFirst: number,
  rowBytes: number,
  dst: Uint8ClampedArray,
  p0: number,
  n: number,
  co: Coefficients,
): void {
  const { first, count, weights, ksize } = co;
  const sums = new Int32Array(rowBytes);
  for (let p = p0; p < p0 + n; p++) {
    sums.fill(HALF);
    for (let k = p * ksize, end = k + count[p]!, row = first[p]! - srcFirst; k < end; k++, row++) {
      const w = weights[k]!;
      const base = row * srcRow;
      for (let x = 0; x < rowBytes; x++) sums[x] = (sums[x]! + Math.imul(src[base + x]!, w)) | 0;
    }
    const out = (p - p0) * rowBytes;
    for (let x = 0; x < rowBytes; x++) dst[out + x] = sums[x]! >> PRECISION_BITS;
  }
}

/**
 * Pillow's two-pass resize to the geometry's resized size, computing only the pixels the centre crop
 * keeps (each output pixel depends on its own row/column coefficients only, so this is exact). Pillow
 * skips a pass whose size does not change; here it runs with the coefficients of an unchanged size,
 * which are the identity (one tap of weight 1), so the result is the same. Since Pillow 13
 * (python-pillow/Pillow#9549) the vertical pass goes first when both sizes change and the height shrinks
 * by more than twice as many pixels as the width.
 */
function resizeAndCrop(image: RgbImage, g: CropGeometry, filter: Filter): Uint8ClampedArray {
  const { data: src, width: inW, height: inH } = image;
  const size = g.cropSize;
  const row = inW * 3;
  const horizontal = coefficients(inW, g.resizedWidth, filter);
  const vertical = coefficients(inH, g.resizedHeight, filter);
  const out = new Uint8ClampedArray(size * size * 3);

  const shrinkH = inH - g.resizedHeight;
  const bothPasses = g.resizedWidth !== inW && g.resizedHeight !== inH;
  if (bothPasses && shrinkH > 0 && shrinkH > 2 * (inW - g.resizedWidth)) {
    const [colFirst, colEnd] = sourceSpan(horizontal, g.cropLeft, size);
    const cols = colEnd - colFirst;
    const temp = new Uint8ClampedArray(size * cols * 3);
    resampleVertical(src.subarray(colFirst * 3), row, 0, cols * 3, temp, g.cropTop, size, vertical);
    resampleHorizontal(temp, cols * 3, colFirst, size, out, g.cropLeft, size, horizontal);
    return out;
  }
  const [rowFirst, rowEnd] = sourceSpan(vertical, g.cropTop, size);
  const rows = rowEnd - rowFirst;
  const temp = new Uint8ClampedArray(rows * size * 3);
  resampleHorizontal(src.subarray(rowFirst * row), row, 0, rows, temp, g.cropLeft, size, horizontal);
  resampleVertical(temp, size * 3, rowFirst, size * 3, out, g.cropTop, size, vertical);
  return out;
}

// ---------------------------------------------------------------- mapping back to the image

/** A point in crop pixels (continuous, pixel edges at integers) to original image coordinates. */
export function cropPointToImage(g: CropGeometry, x: number, y: number): { x: number; y: number } {
  return { x: (x + g.cropLeft) * g.scaleX, y: (y + g.cropTop) * g.scaleY };
}

/** A box in crop pixels to original image coordinates, clipped to the image. */
export function cropBoxToImage(g: CropGeometry, box: Box): Box {
  const a = cropPointToImage(g, box.x0, box.y0);
  const b = cropPointToImage(g, box.x1, box.y1);
  const clip = (v: number, max: number) => Math.min(max, Math.max(0, v));
  return {
    x0: clip(a.x, g.imageWidth),
    y0: clip(a.y, g.imageHeight),
    x1: clip(b.x, g.imageWidth),
    y1: clip(b.y, g.imageHeight),
  };
}

/** The image region under cell (row, col) of a feature map of `grid` size that spans the whole crop. */
export function featureCellToImage(
  g: CropGeometry,
  grid: { height: number; width: number },
  row: number,
  col: number,
): Box {
  const cellW = g.cropSize / grid.width;
  const cellH = g.cropSize / grid.height;
  return cropBoxToImage(g, {
    x0: col * cellW,
    y0: row * cellH,
    x1: (col + 1) * cellW,
    y1: (row + 1) * cellH,
  });
}
