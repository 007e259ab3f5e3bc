import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { sha256 } from '../util/hash';
import type { Backbone } from './backbone';

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

/**
 * MobileNetV2 pretrained on ImageNet and fine-tuned by nsfwjs, shipped inside the npm package
 * (so it loads offline). Cut at `out_relu`, its last feature map: 7 x 7 x 1280 for a 224 px input.
 */
export async function loadNsfwjsMobileNetV2(): Promise<Backbone> {
  const { MobileNetV2Model } = require('nsfwjs/models/mobilenet_v2') as { MobileNetV2Model: BundledModel };
  const modelJson = (await MobileNetV2Model.modelJson()).default;
  const weights = Buffer.from(weightBundle(), 'base64');
  const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights);
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }),
  );
  const cut = model.getLayer('out_relu');
  const extractor = tf.model({ inputs: model.inputs, outputs: cut.output as tf.SymbolicTensor });
  const [, height, width, channels] = cut.outputShape as number[];
  return {
    name: 'nsfwjs-mobilenet-v2',
    fingerprint: sha256(Buffer.concat([Buffer.from(JSON.stringify(modelJson.modelTopology)), weights])).slice(
      0,
      16,
    ),
    inputSize: 224,
    featureShape: { height: height!, width: width!, channels: channels! },
    preprocessing: { resize: 224, crop: 224, scale: 'unit' },
    async extract(images: Float32Array, n: number): Promise<Float32Array> {
      const output = tf.tidy(() => extractor.predict(tf.tensor4d(images, [n, 224, 224, 3])) as tf.Tensor4D);
      const data = (await output.data()) as Float32Array;
      output.dispose();
      return data;
    },
    dispose() {
      model.dispose();
    },
  };
}
