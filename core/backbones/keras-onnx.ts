import type * as tf from '@tensorflow/tfjs';
import { encodeOnnxModel, type OnnxInitializer, type OnnxNode } from './onnx-encode';

type Layer = tf.layers.Layer;
/** A layer's tfjs config (camelCase keys, as `getConfig` gives them). */
type Config = Record<string, unknown>;

/** The layer's weights by their short name ('kernel', 'gamma', ...), copied out of tfjs. */
function weightsOf(layer: Layer): Map<string, { shape: number[]; data: Float32Array }> {
  const values = layer.getWeights();
  return new Map(
    layer.weights.map((weight, i) => [
      weight.originalName.split('/').at(-1)!,
      { shape: weight.shape as number[], data: Float32Array.from(values[i]!.dataSync()) },
    ]),
  );
}

/** Keras kernel [kh, kw, in, out] (or depthwise [kh, kw, in, multiplier]) as ONNX [out, in, kh, kw]. */
function convWeight(kernel: { shape: number[]; data: Float32Array }, depthwise: boolean) {
  const [kh, kw, inC, outC] = kernel.shape as [number, number, number, number];
  const dims = depthwise ? [inC * outC, 1, kh, kw] : [outC, inC, kh, kw];
  const data = new Float32Array(kernel.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < inC; i++)
        for (let o = 0; o < outC; o++) {
          const to = depthwise ? ((i * outC + o) * kh + y) * kw + x : ((o * inC + i) * kh + y) * kw + x;
          data[to] = kernel.data[((y * kw + x) * inC + i) * outC + o]!;
        }
  return { dims, data };
}

/** ONNX pads [top, left, bottom, right] for Keras padding 'valid' or 'same' (TensorFlow's: extra at the end). */
function convPads(config: Config, inputShape: number[]): number[] {
  if (config['padding'] === 'valid') return [0, 0, 0, 0];
  const [kh, kw] = config['kernelSize'] as number[];
  const [sh, sw] = config['strides'] as number[];
  const [dh, dw] = config['dilationRate'] as number[];
  const total = (size: number, k: number, s: number, d: number) =>
    Math.max((Math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0);
  const th = total(inputShape[1]!, kh!, sh!, dh!);
  const tw = total(inputShape[2]!, kw!, sw!, dw!);
  return [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)];
}

/**
 * A tfjs LayersModel from its input up to layer `output`, as an ONNX model that takes and gives
 * channels-last tensors ([batch, H, W, C] in, the layer's [batch, h, w, c] out) and runs channels-first
 * inside, as onnxruntime's CPU kernels prefer. It covers the layers of Keras' MobileNetV2 (ZeroPadding2D,
 * Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Add); any other layer on the way is an error naming it.
 */
export function layersModelToOnnx(model: tf.LayersModel, output: string): Uint8Array {
  const byName = new Map(model.layers.map((layer) => [layer.name, layer]));
  if (!byName.has(output)) throw new Error(`the model has no layer '${output}'`);
  const needed = new Set<string>();
  const visit = (name: string) => {
    if (needed.has(name)) return;
    needed.add(name);
    for (const inbound of byName.get(name)!.inboundNodes[0]!.inboundLayers) visit(inbound.name);
  };
  visit(output);

  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const constant = (name: string, dims: number[], data: Float32Array | BigInt64Array) => {
    initializers.push({ name, dims, data });
    return name;
  };
  let inputShape: number[] | undefined;
  // model.layers is in topological order; ONNX values are named after the layers that produce them.
  for (const layer of model.layers.filter((l) => needed.has(l.name))) {
    const config = layer.getConfig() as Config;
    const inputs = layer.inboundNodes[0]!.inboundLayers.map((l) => l.name);
    const emit = (op: string, attributes?: OnnxNode['attributes'], extra: string[] = []) =>
      nodes.push({
        op,
        inputs: [...inputs, ...extra],
        outputs: [layer.name],
        ...(attributes ? { attributes } : {}),
      });
    const kind = layer.getClassName();
    if (kind === 'InputLayer') {
      if (inputShape) throw new Error(`layer '${output}' depends on more than one model input`);
      inputShape = (layer.outputShape as number[]).slice(1);
      nodes.push({
        op: 'Transpose',
        inputs: ['image'],
        outputs: [layer.name],
        attributes: { perm: [0, 3, 1, 2] },
      });
    } else if (kind === 'ZeroPadding2D') {
      const [[top, bottom], [left, right]] = config['padding'] as [[number, number], [number, number]];
      const pads = BigInt64Array.from([0, 0, top, left, 0, 0, bottom, right].map(BigInt));
      emit('Pad', undefined, [constant(`${layer.name}/pads`, [8], pads)]);
    } else if (kind === 'Conv2D' || kind === 'DepthwiseConv2D') {
      const depthwise = kind === 'DepthwiseConv2D';
      if (config['activation'] !== 'linear' || config['dataFormat'] !== 'channelsLast')
        throw new Error(
          `layer '${layer.name}' (${kind}): only linear activation and channels-last data are supported`,
        );
      const weights = weightsOf(layer);
      const kernel = convWeight(weights.get(depthwise ? 'depthwise_kernel' : 'kernel')!, depthwise);
      const extra = [constant(`${layer.name}/weight`, kernel.dims, kernel.data)];
      const bias = weights.get('bias');
      if (bias) extra.push(constant(`${layer.name}/bias`, bias.shape, bias.data));
      // [[batch, H, W, C]]: one shape per input.
      const input = (layer.inboundNodes[0]!.inputShapes as number[][])[0]!;
      emit(
        'Conv',
        {
          kernel_shape: config['kernelSize'] as number[],
          strides: config['strides'] as number[],
          dilations: config['dilationRate'] as number[],
          pads: convPads(config, input),
          group: depthwise ? input[3]! : 1,
        },
        extra,
      );
    } else if (kind === 'BatchNormalization') {
      if (![-1, 3].includes(config['axis'] as number))
        throw new Error(`layer '${layer.name}' (BatchNormalization): only the channel axis is supported`);
      const weights = weightsOf(layer);
      const mean = weights.get('moving_mean')!;
      const channels = mean.shape[0]!;
      const scale = weights.get('gamma')?.data ?? new Float32Array(channels).fill(1);
      const offset = weights.get('beta')?.data ?? new Float32Array(channels);
      emit('BatchNormalization', { epsilon: { float: config['epsilon'] as number } }, [
        constant(`${layer.name}/gamma`, [channels], scale),
        constant(`${layer.name}/beta`, [channels], offset),
        constant(`${layer.name}/mean`, [channels], mean.data),
        constant(`${layer.name}/variance`, [channels], weights.get('moving_variance')!.data),
      ]);
    } else if (kind === 'ReLU') {
      const max = config['maxValue'];
      if (typeof max !== 'number') emit('Relu');
      else
        emit('Clip', undefined, [
          constant(`${layer.name}/min`, [], Float32Array.of(0)),
          constant(`${layer.name}/max`, [], Float32Array.of(max)),
        ]);
    } else if (kind === 'Add') {
      emit(inputs.length === 2 ? 'Add' : 'Sum');
    } else throw new Error(`layer '${layer.name}' (${kind}) has no ONNX conversion here`);
  }
  if (!inputShape) throw new Error(`layer '${output}' does not depend on a model input`);
  const [, height, width, channels] = byName.get(output)!.outputShape as number[];
  nodes.push({
    op: 'Transpose',
    inputs: [output],
    outputs: ['features'],
    attributes: { perm: [0, 2, 3, 1] },
  });
  return encodeOnnxModel({
    nodes,
    initializers,
    inputs: [{ name: 'image', shape: ['batch', ...inputShape] }],
    outputs: [{ name: 'features', shape: ['batch', height!, width!, channels!] }],
    opset: 13,
  });
}
