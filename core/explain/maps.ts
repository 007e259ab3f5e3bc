import { type CropGeometry, cropPointToImage } from '../data/preprocess';
import { type FeatureShape, pixelsOf } from '../features/feature-set';
import type { ChannelPooling, ExplainModel, InfoDisentModel } from './models';

/**
 * The sparse maps S_c of one image (SPEC section 1), stored by their at most two non-zero pixels:
 * S_c = `positive[c]` at `argmax[c]` and `negative[c]` at `argmin[c]`, 0 elsewhere.
 */
export interface SparseMaps {
  pixels: number;
  channels: number;
  argmax: Int32Array;
  argmin: Int32Array;
  /** Z at the argmax pixel where it is > 0, else 0. */
  positive: Float32Array;
  /** Z at the argmin pixel where it is < 0, else 0. */
  negative: Float32Array;
}

/**
 * Sparse maps of image `index` of a batch, from the pooling's extreme pixels: only Z at those two pixels
 * is computed (2 C^2 products per image instead of HW C^2). `maps` is the batch [n, H, W, C].
 */
export function sparseMaps(
  model: InfoDisentModel,
  maps: Float32Array,
  pooling: ChannelPooling,
  index: number,
): SparseMaps {
  const { channels } = model.shape;
  const pixels = pixelsOf(model.shape);
  const image = index * pixels * channels;
  const u = model.rotation;
  const rotatedAt = (c: number, pixel: number): number => {
    let sum = 0;
    const at = image + pixel * channels;
    for (let d = 0; d < channels; d++) sum += u[c * channels + d]! * maps[at + d]!;
    return sum;
  };
  const argmax = pooling.argmax.slice(index * channels, (index + 1) * channels);
  const argmin = pooling.argmin.slice(index * channels, (index + 1) * channels);
  const positive = new Float32Array(channels);
  const negative = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    positive[c] = Math.max(0, rotatedAt(c, argmax[c]!));
    negative[c] = Math.min(0, rotatedAt(c, argmin[c]!));
  }
  return { pixels, channels, argmax, argmin, positive, negative };
}

/** S_c as a dense map [HW]. */
export function denseSparseMap(maps: SparseMaps, channel: number): Float32Array {
  const out = new Float32Array(maps.pixels);
  out[maps.argmax[channel]!]! += maps.positive[channel]!;
  out[maps.argmin[channel]!]! += maps.negative[channel]!;
  return out;
}

type Weights = Pick<ExplainModel, 'weights' | 'classes'>;

/** Row k of W, [C]. */
export function classRow(model: Weights, k: number): Float32Array {
  if (!(Number.isInteger(k) && k >= 0 && k < model.classes))
    throw new Error(`class ${k} outside 0..${model.classes - 1}`);
  const c = model.weights.length / model.classes;
  return model.weights.subarray(k * c, (k + 1) * c);
}

/** a_kc = W_kc p_c for class k and one image's pooled vector p [C]. */
export function contributions(model: Weights, pooled: ArrayLike<number>, k: number): Float64Array {
  const w = classRow(model, k);
  return Float64Array.from(w, (weight, c) => weight * pooled[c]!);
}

/** InfoDisent's class heatmap M_k(ij) = sum_c W+_kc S_c(ij) on the feature grid [HW], both signs kept. */
export function sparseHeatmap(model: Weights, maps: SparseMaps, k: number): Float32Array {
  const w = classRow(model, k);
  const out = new Float32Array(maps.pixels);
  for (let c = 0; c < maps.channels; c++) {
    out[maps.argmax[c]!]! += w[c]! * maps.positive[c]!;
    out[maps.argmin[c]!]! += w[c]! * maps.negative[c]!;
  }
  return out;
}

/** The baseline's class-activation map M_k(ij) = sum_c W_kc F_ij,c of image `index` of a batch, [HW]. */
export function camHeatmap(
  model: Pick<ExplainModel, 'weights' | 'classes' | 'shape'>,
  maps: Float32Array,
  index: number,
  k: number,
): Float32Array {
  const { channels } = model.shape;
  const pixels = pixelsOf(model.shape);
  const w = classRow(model, k);
  const out = new Float32Array(pixels);
  for (let a = 0; a < pixels; a++) {
    const at = (index * pixels + a) * channels;
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += w[c]! * maps[at + c]!;
    out[a] = sum;
  }
  return out;
}

/**
 * The class heatmap M_k of image `index` of a batch on the feature grid [HW]: InfoDisent's sparse heatmap
 * (from the batch's pooling) or the baseline's CAM. No backward pass in either case.
 */
export function classHeatmap(
  model: ExplainModel,
  maps: Float32Array,
  index: number,
  k: number,
  pooling: ChannelPooling,
): Float32Array {
  return model.kind === 'baseline'
    ? camHeatmap(model, maps, index, k)
    : sparseHeatmap(model, sparseMaps(model, maps, pooling, index), k);
}

/** Largest |value| of a map: the symmetric colour scale of a diverging heatmap. */
export function symmetricRange(values: ArrayLike<number>): number {
  let range = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]!);
    if (v > range) range = v;
  }
  return range;
}

type Grid = Pick<FeatureShape, 'height' | 'width'>;

/**
 * Bilinear upsampling of a grid map to the original image, through the preprocessing geometry: pixel
 * centres sit at cell centres of the crop (align_corners = false), values clamp at the crop's edges, and
 * image pixels outside the crop (shorter-side resize + centre crop) are NaN. `out` sets the output
 * resolution (default: the image's own size); it is the image rescaled, not cropped.
 */
export function heatmapOnImage(
  map: ArrayLike<number>,
  grid: Grid,
  geometry: CropGeometry,
  out: { width: number; height: number } = { width: geometry.imageWidth, height: geometry.imageHeight },
): Float32Array {
  if (map.length !== grid.height * grid.width)
    throw new Error(`map has ${map.length} cells, grid ${grid.height}x${grid.width}`);
  const result = new Float32Array(out.width * out.height);
  const cellX = geometry.cropSize / grid.width;
  const cellY = geometry.cropSize / grid.height;
  // For one output column/row: grid coordinate, or NaN outside the crop.
  const axis = (
    outSize: number,
    imageSize: number,
    scale: number,
    offset: number,
    cell: number,
    cells: number,
  ) =>
    Float64Array.from({ length: outSize }, (_, x) => {
      const crop = ((x + 0.5) * imageSize) / outSize / scale - offset;
      if (crop < 0 || crop > geometry.cropSize) return Number.NaN;
      return Math.min(cells - 1, Math.max(0, crop / cell - 0.5));
    });
  const gx = axis(out.width, geometry.imageWidth, geometry.scaleX, geometry.cropLeft, cellX, grid.width);
  const gy = axis(out.height, geometry.imageHeight, geometry.scaleY, geometry.cropTop, cellY, grid.height);
  for (let y = 0; y < out.height; y++) {
    const v = gy[y]!;
    const y0 = Math.floor(v);
    const y1 = Math.min(grid.height - 1, y0 + 1);
    const ty = v - y0;
    for (let x = 0; x < out.width; x++) {
      const u = gx[x]!;
      if (Number.isNaN(u) || Number.isNaN(v)) {
        result[y * out.width + x] = Number.NaN;
        continue;
      }
      const x0 = Math.floor(u);
      const x1 = Math.min(grid.width - 1, x0 + 1);
      const tx = u - x0;
      const top = map[y0 * grid.width + x0]! * (1 - tx) + map[y0 * grid.width + x1]! * tx;
      const bottom = map[y1 * grid.width + x0]! * (1 - tx) + map[y1 * grid.width + x1]! * tx;
      result[y * out.width + x] = top * (1 - ty) + bottom * ty;
    }
  }
  return result;
}

/**
 * The peak of a heatmap in original image coordinates. The bilinear upsampling's maximum is a grid value
 * taken at its cell's centre, so the peak is the centre of the highest cell (first one on ties).
 */
export function heatmapPeak(
  map: ArrayLike<number>,
  grid: Grid,
  geometry: CropGeometry,
): { pixel: number; value: number; x: number; y: number } {
  let pixel = 0;
  for (let a = 1; a < map.length; a++) if (map[a]! > map[pixel]!) pixel = a;
  const row = Math.floor(pixel / grid.width);
  const col = pixel % grid.width;
  const { x, y } = cropPointToImage(
    geometry,
    ((col + 0.5) * geometry.cropSize) / grid.width,
    ((row + 0.5) * geometry.cropSize) / grid.height,
  );
  return { pixel, value: map[pixel]!, x, y };
}
