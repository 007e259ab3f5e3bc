/**
 * torchvision's evaluation transform for PIL images — Resize(shorter side) → CenterCrop → ToTensor →
 * Normalize — applied to images decoded with sharp. The resize is Pillow's (resample.ts, its passes in
 * WebAssembly SIMD), so for the same decoded pixels the output equals torchvision's bit for bit; see
 * test/preprocess.test.ts.
 *
 * Decoding follows torchvision's default loader (`Image.open(f).convert('RGB')`): no EXIF rotation, alpha
 * dropped, grey replicated, embedded ICC profiles ignored. Known deviation: CMYK JPEGs are converted by
 * libvips' colour management, not by Pillow's naive formula.
 */
import sharp from 'sharp';
import { InputError } from '../util/errors';
import type { Box } from './dataset';
import { type Interpolation, resizeAndCrop } from './resample';

export type { Interpolation } from './resample';

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
  return resizeAndCrop(image, cropGeometry(image.width, image.height, preset), preset.interpolation);
}

export function preprocessRgb(
  image: RgbImage,
  presetOrName: PreprocessPreset | PresetName,
): PreprocessedImage {
  const preset = typeof presetOrName === 'string' ? PRESETS[presetOrName] : presetOrName;
  const geometry = cropGeometry(image.width, image.height, preset);
  const pixels = resizeAndCrop(image, geometry, preset.interpolation);
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
