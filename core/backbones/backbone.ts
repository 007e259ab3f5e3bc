import type { PresetName } from '../data/preprocess';
import type { FeatureShape } from '../features/feature-set';
import type { ComputeRuntime } from '../util/compute-record';

/** A frozen, pretrained network cut at its last feature map. */
export interface Backbone {
  /** Registry name, e.g. 'nsfwjs-mobilenet-v2'. */
  readonly name: string;
  /** Hash of the weights and graph: part of every feature cache key. */
  readonly fingerprint: string;
  /** Square input side the network expects, in pixels. */
  readonly inputSize: number;
  readonly featureShape: FeatureShape;
  /** Where the preprocessing of this backbone is described (part of the cache key). */
  readonly preprocessing: { resize: number; crop: number; scale: 'unit' | 'imagenet' };
  /**
   * The torchvision transform (core/data/preprocess.ts) images are prepared with before `extract`. Absent:
   * the image squeezed to inputSize x inputSize by sharp, values in [0, 1] (`loadImage`).
   */
  readonly preset?: PresetName;
  /**
   * Images per `extract` call that keep its device busy: a GPU provider's larger batch, the batch of a
   * model exported with a fixed one. Absent: extraction's default (16).
   */
  readonly batchSize?: number;
  /** What computes the features, and on which hardware: recorded with every feature set it extracts. */
  readonly runtime: ComputeRuntime;
  /** Maps a batch [n, inputSize, inputSize, 3] (preprocessed) to features [n, H, W, C]. */
  extract(images: Float32Array, n: number): Promise<Float32Array>;
  /**
   * Like `extract`, from the preset's crops before normalisation: uint8 [n, inputSize, inputSize, 3]
   * (`cropPixels`). A backbone that normalises in its own graph (an ONNX one) has it: extraction then
   * prepares, copies and sends to the device a quarter of the bytes.
   */
  extractPixels?(pixels: Uint8Array, n: number): Promise<Float32Array>;
  dispose(): void;
}
