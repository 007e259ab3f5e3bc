import type { LinearHead } from '../analysis/channel-ablation';
import { type FeatureShape, pixelsOf } from '../features/feature-set';
import type { BaselineHead } from '../method/baseline-head';
import type { InfoDisentHead } from '../method/infodisent-head';

/**
 * Per-channel pooling of a batch of n images, each array [n, C] row-major. `argmax`/`argmin` are flat
 * pixel indices (row * W + col) of the channel's highest and lowest value: of Z for InfoDisent, of the
 * raw map F for the baseline.
 */
export interface ChannelPooling {
  n: number;
  channels: number;
  /** p, the vector the linear layer reads: sparse pooling of Z (InfoDisent) or the mean of F (baseline). */
  pooled: Float32Array;
  argmax: Int32Array;
  argmin: Int32Array;
}

interface ModelBase extends LinearHead {
  readonly shape: FeatureShape;
  /** [K, C] row-major: W+ for InfoDisent, W for the baseline. */
  readonly weights: Float32Array;
  /** [K]. */
  readonly bias: Float32Array;
  /** Pools a batch of feature maps [n, H, W, C]. */
  pool(maps: Float32Array): Promise<ChannelPooling>;
}

export interface InfoDisentModel extends ModelBase {
  readonly kind: 'infodisent';
  /** U, [C, C] row-major: Z_ij = U F_ij. */
  readonly rotation: Float32Array;
}

export interface BaselineModel extends ModelBase {
  readonly kind: 'baseline';
}

/** A trained head as plain arrays: everything explanations need, with no tensors to dispose. */
export type ExplainModel = InfoDisentModel | BaselineModel;

function checkParameters(
  shape: FeatureShape,
  classes: number,
  weights: Float32Array,
  bias: Float32Array,
): void {
  if (weights.length !== classes * shape.channels)
    throw new Error(`weights hold ${weights.length} values, expected ${classes} x ${shape.channels}`);
  if (bias.length !== classes) throw new Error(`bias holds ${bias.length} values, expected ${classes}`);
}

function imagesIn(maps: Float32Array, shape: FeatureShape): number {
  const size = pixelsOf(shape) * shape.channels;
  if (maps.length % size !== 0)
    throw new Error(
      `${maps.length} values are not whole ${shape.height}x${shape.width}x${shape.channels} maps`,
    );
  return maps.length / size;
}

/** Z = U F for every pixel of a batch [n, H, W, C] (plain JS: O(n HW C^2)). */
export function rotateMaps(rotation: Float32Array, maps: Float32Array, shape: FeatureShape): Float32Array {
  const c = shape.channels;
  if (rotation.length !== c * c) throw new Error(`rotation holds ${rotation.length} values, expected ${c}^2`);
  const z = new Float32Array(maps.length);
  for (let at = 0; at < maps.length; at += c) {
    for (let row = 0; row < c; row++) {
      let sum = 0;
      for (let d = 0; d < c; d++) sum += rotation[row * c + d]! * maps[at + d]!;
      z[at + row] = sum;
    }
  }
  return z;
}

/**
 * Pooling of already-rotated (InfoDisent) or raw (baseline) maps in plain JS: 'sparse' is
 * p_c = max(0, max Z_c) + min(0, min Z_c), 'average' the mean over pixels. First index wins ties.
 */
export function poolMaps(
  maps: Float32Array,
  shape: FeatureShape,
  pooling: 'sparse' | 'average',
): ChannelPooling {
  const n = imagesIn(maps, shape);
  const { channels } = shape;
  const pixels = pixelsOf(shape);
  const pooled = new Float32Array(n * channels);
  const argmax = new Int32Array(n * channels);
  const argmin = new Int32Array(n * channels);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      const first = i * pixels * channels + c;
      let high = maps[first]!;
      let low = high;
      let sum = 0;
      let highAt = 0;
      let lowAt = 0;
      for (let a = 0; a < pixels; a++) {
        const v = maps[first + a * channels]!;
        sum += v;
        if (v > high) {
          high = v;
          highAt = a;
        }
        if (v < low) {
          low = v;
          lowAt = a;
        }
      }
      const out = i * channels + c;
      pooled[out] = pooling === 'average' ? sum / pixels : Math.max(0, high) + Math.min(0, low);
      argmax[out] = highAt;
      argmin[out] = lowAt;
    }
  }
  return { n, channels, pooled, argmax, argmin };
}

/** An InfoDisent model from its parameters, pooling in plain JS (exact, slow for large C). */
export function infoDisentModelFromArrays(parameters: {
  shape: FeatureShape;
  weights: Float32Array;
  bias: Float32Array;
  rotation: Float32Array;
}): InfoDisentModel {
  const { shape, weights, bias, rotation } = parameters;
  const classes = bias.length;
  checkParameters(shape, classes, weights, bias);
  if (weights.some((w) => w < 0)) throw new Error('InfoDisent weights W+ must be non-negative');
  return {
    kind: 'infodisent',
    shape,
    classes,
    weights,
    bias,
    rotation,
    pool: async (maps) => poolMaps(rotateMaps(rotation, maps, shape), shape, 'sparse'),
  };
}

/** A baseline model from its parameters; `argmax`/`argmin` locate each raw channel's peak and trough. */
export function baselineModelFromArrays(parameters: {
  shape: FeatureShape;
  weights: Float32Array;
  bias: Float32Array;
}): BaselineModel {
  const { shape, weights, bias } = parameters;
  const classes = bias.length;
  checkParameters(shape, classes, weights, bias);
  return {
    kind: 'baseline',
    shape,
    classes,
    weights,
    bias,
    pool: async (maps) => poolMaps(maps, shape, 'average'),
  };
}

/**
 * Reads a trained InfoDisent head into plain arrays. Pooling still runs through the head (on its tfjs
 * backend), which is what makes streaming prototypes over a training set affordable at C = 1280+;
 * the head must outlive the model.
 */
export async function infoDisentModel(head: InfoDisentHead): Promise<InfoDisentModel> {
  const rotationTensor = await head.rotation();
  const rotation = Float32Array.from(await rotationTensor.data());
  rotationTensor.dispose();
  const model = infoDisentModelFromArrays({
    shape: head.shape,
    weights: Float32Array.from(await head.classWeights().data()),
    bias: Float32Array.from(await head.trainable()['bias']!.data()),
    rotation,
  });
  return {
    ...model,
    async pool(maps) {
      const result = await head.pool(maps);
      const [n, channels] = result.pooled.shape;
      const [pooled, argmax, argmin] = await Promise.all([
        result.pooled.data(),
        result.argmax.data(),
        result.argmin.data(),
      ]);
      result.pooled.dispose();
      result.argmax.dispose();
      result.argmin.dispose();
      return {
        n,
        channels,
        pooled: Float32Array.from(pooled),
        argmax: Int32Array.from(argmax),
        argmin: Int32Array.from(argmin),
      };
    },
  };
}

/** Reads a trained baseline head into plain arrays (its average pooling is cheap in JS). */
export async function baselineModel(head: BaselineHead): Promise<BaselineModel> {
  return baselineModelFromArrays({
    shape: head.shape,
    weights: Float32Array.from(await head.classWeights().data()),
    bias: Float32Array.from(await head.trainable()['bias']!.data()),
  });
}

/** logits = W p + b for every image of a pooling, [n, K]. */
export function logitsOf(
  model: Pick<ExplainModel, 'weights' | 'bias' | 'classes'>,
  pooled: Float32Array,
): Float64Array {
  const k = model.classes;
  const c = model.weights.length / k;
  const n = pooled.length / c;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let cls = 0; cls < k; cls++) {
      let sum = model.bias[cls]!;
      for (let ch = 0; ch < c; ch++) sum += model.weights[cls * c + ch]! * pooled[i * c + ch]!;
      out[i * k + cls] = sum;
    }
  }
  return out;
}
