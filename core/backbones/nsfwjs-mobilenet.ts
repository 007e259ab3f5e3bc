import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { sha256 } from '../util/hash';
import type { Backbone } from './backbone';
import { layersModelToOnnx } from './keras-onnx';
import { loadOnnxBackbone, type OnnxBackboneOptions } from './onnx-backbone';

interface BundledModel {
  modelJson: () => Promise<{
    default: { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  }>;
}

/**
 * The weights, one base64 string. nsfwjs's own loader passes that string through TypeScript's __importStar,
 * which defines one property per character (10 s for 3.5 MB); its module, beside the loader, returns it as is.
 */
function weightBundle(): string {
  const loader = path.dirname(require.resolve('nsfwjs/models/mobilenet_v2'));
  return require(
    path.join(loader, '..', '..', 'models', 'mobilenet_v2', 'group1-shard1of1.min.js'),
  ) as string;
}

/** nsfwjs' MobileNetV2 as the tfjs LayersModel the package ships, with the fingerprint of its topology and weights. */
export async function loadNsfwjsLayersModel(): Promise<{ model: tf.LayersModel; fingerprint: string }> {
  const { MobileNetV2Model } = require('nsfwjs/models/mobilenet_v2') as { MobileNetV2Model: BundledModel };
  const modelJson = (await MobileNetV2Model.modelJson()).default;
  const weights = Buffer.from(weightBundle(), 'base64');
  const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights);
  // Loading creates tensors: some backend (whichever is registered first, unless one was chosen) must be up.
  await tf.ready();
  // tfjs's cpu backend greets its first tensor in Node with advice to install tfjs-node; the model is only
  // read here (onnxruntime runs it), so the advice is noise in the CLI's progress. PROD silences tfjs's logs.
  const prod = tf.env().getBool('PROD');
  tf.env().set('PROD', true);
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology,
        weightSpecs,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      }),
    );
  } finally {
    tf.env().set('PROD', prod);
  }
  const fingerprint = sha256(
    Buffer.concat([Buffer.from(JSON.stringify(modelJson.modelTopology)), weights]),
  ).slice(0, 16);
  return { model, fingerprint };
}

/**
 * MobileNetV2 pretrained on ImageNet and fine-tuned by nsfwjs, shipped inside the npm package
 * (so it loads offline), cut at `out_relu`, its last feature map: 7 x 7 x 1280 for a 224 px input.
 * The tfjs model is converted to ONNX in memory and run by onnxruntime's CPU provider: about ten times
 * the throughput of tfjs' wasm backend on the same core (bench/NOTES.md); `provider` picks another (the
 * doctor's check of each). The fingerprint is that of the package's model, whichever runtime computes it.
 */
export async function loadNsfwjsMobileNetV2(
  options: Pick<OnnxBackboneOptions, 'intraOpNumThreads' | 'provider'> = {},
): Promise<Backbone> {
  const { model, fingerprint } = await loadNsfwjsLayersModel();
  let onnx: Uint8Array;
  try {
    onnx = layersModelToOnnx(model, 'out_relu');
  } finally {
    model.dispose();
  }
  const backbone = await loadOnnxBackbone({
    file: 'nsfwjs/models/mobilenet_v2 (converted to ONNX)',
    model: onnx,
    // Its input size; the images themselves are prepared by `loadImage`, as `preset` is left out below.
    preset: 'mobilenet_v2_tfjs',
    provider: 'cpu',
    ...options,
  });
  return {
    name: 'nsfwjs-mobilenet-v2',
    fingerprint,
    inputSize: backbone.inputSize,
    featureShape: backbone.featureShape,
    preprocessing: { resize: 224, crop: 224, scale: 'unit' },
    runtime: backbone.runtime,
    extract: (images, n) => backbone.extract(images, n),
    dispose: () => backbone.dispose(),
  };
}
