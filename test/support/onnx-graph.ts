/**
 * Small ONNX test models (a seeded conv stack ending as a feature map, tokens or logits), so tests and the
 * CPU bench get real model files without PyTorch.
 */
import {
  encodeOnnxModel,
  encodeOnnxModelWithExternalData,
  ONNX_TYPE,
  type OnnxInitializer,
  type OnnxNode,
  type OnnxValue,
} from '../../core/backbones/onnx-encode';
import { fromFloat16Bits, toFloat16Bits } from '../../core/util/float16';

const { float: FLOAT, float16: FLOAT16 } = ONNX_TYPE;

/** Deterministic weights in [-scale, scale) from a 32-bit LCG. */
export function seededWeights(count: number, seed: number, scale = 0.5): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * 2 * scale;
  });
}

export type TestModelOutput = 'nchw' | 'nhwc' | 'tokens' | 'logits';

export interface ConvStage {
  channels: number;
  stride: number;
}

/**
 * A chain of 3x3 convolutions (pad 1) + ReLU on a `side` px RGB input, with seeded weights, ending as
 * `output` says: 'nchw' the map [batch, C, H, W]; 'nhwc' the same network taking and giving channels-last
 * tensors ([batch, side, side, 3] -> [batch, H, W, C]); 'tokens' the map as ViT-style tokens
 * [batch, 1 + H*W, C] whose first (class) token is all 7s; 'logits' global pooling after the map, so the
 * only graph output is [batch, C] and the map ('features') is an intermediate value. With `float16`, the
 * convolutions hold float16 weights and run between casts, float32 in and out (as export_backbones.py
 * --fp16 writes); the weights returned are then the float16 values.
 */
export function convStackModel(options: {
  side: number;
  stages: ConvStage[];
  seed: number;
  output: TestModelOutput;
  float16?: boolean;
  /** Store the weights in this file beside the model (returned as `data`), as exporters do past 2 GB. */
  externalData?: string;
  /** A fixed batch size, as some exports have, instead of a symbolic one. */
  batch?: number;
}): { model: Uint8Array; data?: Uint8Array; weights: Float32Array[]; biases: Float32Array[] } {
  const { side, stages, seed, output, float16 = false } = options;
  const batch = options.batch ?? 'batch';
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const weights: Float32Array[] = [];
  const biases: Float32Array[] = [];
  let current = 'image';
  if (output === 'nhwc') {
    nodes.push({
      op: 'Transpose',
      inputs: ['image'],
      outputs: ['image_nchw'],
      attributes: { perm: [0, 3, 1, 2] },
    });
    current = 'image_nchw';
  }
  if (float16) {
    nodes.push({ op: 'Cast', inputs: [current], outputs: ['image16'], attributes: { to: FLOAT16 } });
    current = 'image16';
  }
  let inChannels = 3;
  let size = side;
  stages.forEach((stage, i) => {
    let w = seededWeights(stage.channels * inChannels * 9, seed + 2 * i, Math.sqrt(3 / (inChannels * 9)));
    let b = seededWeights(stage.channels, seed + 2 * i + 1, 0.1);
    const stored = float16 ? [toFloat16Bits(w), toFloat16Bits(b)] : [w, b];
    if (float16)
      [w, b] = stored.map((bits) => fromFloat16Bits(bits as Uint16Array)) as [Float32Array, Float32Array];
    weights.push(w);
    biases.push(b);
    initializers.push(
      { name: `w${i}`, dims: [stage.channels, inChannels, 3, 3], data: stored[0]! },
      { name: `b${i}`, dims: [stage.channels], data: stored[1]! },
    );
    const last = i === stages.length - 1;
    nodes.push(
      {
        op: 'Conv',
        inputs: [current, `w${i}`, `b${i}`],
        outputs: [`conv${i}`],
        attributes: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [stage.stride, stage.stride] },
      },
      { op: 'Relu', inputs: [`conv${i}`], outputs: [last && !float16 ? 'features' : `relu${i}`] },
    );
    current = `relu${i}`;
    inChannels = stage.channels;
    size = Math.floor((size - 1) / stage.stride) + 1;
  });
  if (float16)
    nodes.push({ op: 'Cast', inputs: [current], outputs: ['features'], attributes: { to: FLOAT } });
  const channels = inChannels;
  const cells = size * size;
  let graphOutput: OnnxValue;
  if (output === 'nchw') {
    graphOutput = { name: 'features', shape: [batch, channels, size, size] };
  } else if (output === 'nhwc') {
    nodes.push({
      op: 'Transpose',
      inputs: ['features'],
      outputs: ['features_nhwc'],
      attributes: { perm: [0, 2, 3, 1] },
    });
    graphOutput = { name: 'features_nhwc', shape: [batch, size, size, channels] };
  } else if (output === 'tokens') {
    initializers.push(
      { name: 'token_shape', dims: [3], data: BigInt64Array.from([0n, BigInt(channels), -1n]) },
      { name: 'class_pad', dims: [6], data: BigInt64Array.from([0n, 1n, 0n, 0n, 0n, 0n]) },
      { name: 'class_value', dims: [], data: Float32Array.from([7]) },
    );
    nodes.push(
      { op: 'Reshape', inputs: ['features', 'token_shape'], outputs: ['flat'] },
      { op: 'Transpose', inputs: ['flat'], outputs: ['patches'], attributes: { perm: [0, 2, 1] } },
      { op: 'Pad', inputs: ['patches', 'class_pad', 'class_value'], outputs: ['tokens'] },
    );
    graphOutput = { name: 'tokens', shape: [batch, 1 + cells, channels] };
  } else {
    nodes.push(
      { op: 'GlobalAveragePool', inputs: ['features'], outputs: ['pooled'] },
      { op: 'Flatten', inputs: ['pooled'], outputs: ['logits'], attributes: { axis: 1 } },
    );
    graphOutput = { name: 'logits', shape: [batch, channels] };
  }
  const graph = {
    nodes,
    initializers,
    inputs: [{ name: 'image', shape: output === 'nhwc' ? [batch, side, side, 3] : [batch, 3, side, side] }],
    outputs: [graphOutput],
  };
  if (options.externalData)
    return { ...encodeOnnxModelWithExternalData(graph, options.externalData), weights, biases };
  return { model: encodeOnnxModel(graph), weights, biases };
}
