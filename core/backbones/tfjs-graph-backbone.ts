import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { PRESETS, type PresetName } from '../data/preprocess';
import type { FeatureShape } from '../features/feature-set';
import { tfjsRuntime } from '../tf/backend';
import { contentKey } from '../util/hash';
import type { Backbone } from './backbone';

export interface TfjsBackboneOptions {
  /** A tfjs model.json (layers or graph model), or the folder holding it; its weight shards lie beside it. */
  path: string;
  /** Registry name; default: the folder's name. */
  name?: string;
  /**
   * The transform the model was trained with (core/data/preprocess.ts). Absent: the image squeezed to
   * the model's input size, values in [0, 1], as the bundled nsfwjs MobileNetV2 takes it.
   */
  preset?: PresetName;
  /** The layer (layers model) or node (graph model) to cut at; default: the model's output. */
  output?: string;
}

export interface TfjsBackbone extends Backbone {
  readonly format: 'layers-model' | 'graph-model';
  readonly outputName: string;
}

function describe(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => d ?? 'n').join(', ')}]`;
}

/** The [H, W, C] of a tfjs (channels-last) output, or an error naming the model and the shape. */
function featureShapeOf(file: string, output: string, shape: readonly (number | null)[]): FeatureShape {
  const [, height, width, channels] = shape;
  if (shape.length === 4 && height && width && channels && height * width > 1)
    return { height, width, channels };
  throw new Error(
    `${file}: output '${output}' has shape ${describe(shape)}, which is not a feature map ([n, H, W, C] with ` +
      `H*W > 1); name the layer or node of the last feature map in 'output'`,
  );
}

/**
 * A frozen tfjs model from disk, cut at a named layer or node, on whichever tfjs backend is selected.
 * Loaded through memory (no file:// handler exists without tfjs-node); the fingerprint hashes model.json
 * and every weight shard, plus the cut.
 */
export async function loadTfjsBackbone(options: TfjsBackboneOptions): Promise<TfjsBackbone> {
  let file = path.resolve(options.path);
  if ((await stat(file)).isDirectory()) file = path.join(file, 'model.json');
  const jsonBytes = await readFile(file);
  const json = JSON.parse(jsonBytes.toString('utf8')) as tf.io.ModelJSON;
  if (!json.modelTopology || !json.weightsManifest) throw new Error(`${file} is not a tfjs model.json`);
  const hash = createHash('sha256').update(jsonBytes);
  const shards: Buffer[] = [];
  for (const group of json.weightsManifest)
    for (const shard of group.paths) {
      const bytes = await readFile(path.join(path.dirname(file), shard));
      hash.update(bytes);
      shards.push(bytes);
    }
  const weights = Buffer.concat(shards);
  const artifacts: tf.io.ModelArtifacts = {
    ...json,
    weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  };
  const fileHash = hash.digest('hex');
  const fingerprint =
    options.output === undefined
      ? fileHash.slice(0, 16)
      : contentKey({ model: fileHash, output: options.output });
  const format = json.format === 'graph-model' ? 'graph-model' : 'layers-model';

  // Unknown dimensions: null in layers models, -1 in graph models.
  const known = (shape: readonly (number | null)[]) => shape.map((d) => (d === -1 ? null : d));
  const sizeFor = (inputShape: readonly (number | null)[]): number => {
    if (inputShape.length !== 4 || (inputShape[3] !== null && inputShape[3] !== 3))
      throw new Error(`${file}: input ${describe(inputShape)} is not an RGB image batch [n, H, W, 3]`);
    const size = options.preset ? PRESETS[options.preset].cropSize : inputShape[1];
    if (!size) throw new Error(`${file}: input ${describe(inputShape)} has no fixed size: name a preset`);
    for (const dim of [inputShape[1], inputShape[2]])
      if (dim !== null && dim !== size)
        throw new Error(
          `${file}: input ${describe(inputShape)} is not ${size}x${size}, the crop of preset '${options.preset}'`,
        );
    return size;
  };

  let run: (x: tf.Tensor4D) => tf.Tensor;
  let side: number;
  let outputShape: readonly (number | null)[];
  let outputName: string;
  let dispose: () => void;
  if (format === 'layers-model') {
    const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    outputName = options.output ?? model.outputs[0]!.sourceLayer.name;
    let output = model.outputs[0]!;
    if (options.output !== undefined) {
      const layer = model.layers.find((l) => l.name === options.output);
      if (!layer) throw new Error(`${file} has no layer '${options.output}'`);
      output = layer.output as tf.SymbolicTensor;
    }
    const extractor = tf.model({ inputs: model.inputs, outputs: output });
    run = (x) => extractor.predict(x) as tf.Tensor;
    side = sizeFor(known(model.inputs[0]!.shape));
    outputShape = output.shape;
    dispose = () => model.dispose();
  } else {
    const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
    outputName = options.output ?? model.outputNodes[0]!;
    const name = outputName;
    run = (x) => model.execute(x, name) as tf.Tensor;
    side = sizeFor(known(model.inputs[0]!.shape ?? []));
    // A graph model records no node shapes: run one batch of zeros to see the output's.
    try {
      const probe = tf.tidy(() => run(tf.zeros([1, side, side, 3])));
      outputShape = probe.shape;
      probe.dispose();
    } catch (error) {
      throw new Error(`${file}: cannot run to node '${name}': ${(error as Error).message}`);
    }
    dispose = () => model.dispose();
  }
  const featureShape = featureShapeOf(file, outputName, outputShape);
  const preset = options.preset ? PRESETS[options.preset] : undefined;

  return {
    name: options.name ?? path.basename(path.dirname(file)),
    fingerprint,
    inputSize: side,
    featureShape,
    preprocessing: preset
      ? {
          resize: preset.resizeTo,
          crop: preset.cropSize,
          scale: preset.std.every((s) => s === 1) && preset.mean.every((m) => m === 0) ? 'unit' : 'imagenet',
        }
      : { resize: side, crop: side, scale: 'unit' },
    ...(options.preset ? { preset: options.preset } : {}),
    runtime: tfjsRuntime(),
    format,
    outputName,
    async extract(images: Float32Array, n: number): Promise<Float32Array> {
      const output = tf.tidy(() => run(tf.tensor4d(images, [n, side, side, 3])));
      const data = (await output.data()) as Float32Array;
      output.dispose();
      return data;
    },
    dispose,
  };
}
