/**
 * Writes small ONNX models (ModelProto, protobuf wire format) from a plain description, so tests and the
 * CPU bench get real model files without PyTorch. Only what those models use is encoded: float32,
 * float16 and int64 initializers as raw_data, INT/INTS/FLOAT attributes, typed graph inputs and outputs.
 */

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, number | number[] | { float: number }>;
}

export interface OnnxInitializer {
  name: string;
  dims: number[];
  /** A Uint16Array holds float16 bit patterns. */
  data: Float32Array | BigInt64Array | Uint16Array;
}

/** A graph input or output; a string dimension is symbolic (e.g. 'batch'). */
export interface OnnxValue {
  name: string;
  shape: (number | string)[];
}

export interface OnnxGraph {
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  opset?: number;
}

const FLOAT = 1;
const INT64 = 7;
const FLOAT16 = 10;
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_INTS = 7;

class ProtoWriter {
  private readonly parts: Uint8Array[] = [];

  private varint(value: bigint): void {
    // Negative int64 values are written as their 64-bit two's complement (10 bytes), as protobuf does.
    let v = BigInt.asUintN(64, value);
    const bytes: number[] = [];
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      bytes.push(v > 0n ? byte | 0x80 : byte);
    } while (v > 0n);
    this.parts.push(Uint8Array.from(bytes));
  }

  int(field: number, value: number | bigint): this {
    this.varint(BigInt(field << 3));
    this.varint(BigInt(value));
    return this;
  }

  float(field: number, value: number): this {
    this.varint(BigInt((field << 3) | 5));
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.parts.push(bytes);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.varint(BigInt((field << 3) | 2));
    this.varint(BigInt(data.length));
    this.parts.push(data);
    return this;
  }

  string(field: number, text: string): this {
    return this.bytes(field, new TextEncoder().encode(text));
  }

  message(field: number, inner: ProtoWriter): this {
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

function valueInfo(value: OnnxValue): ProtoWriter {
  const shape = new ProtoWriter();
  for (const dim of value.shape) {
    shape.message(
      1,
      typeof dim === 'number' ? new ProtoWriter().int(1, dim) : new ProtoWriter().string(2, dim),
    );
  }
  const tensorType = new ProtoWriter().int(1, FLOAT).message(2, shape);
  return new ProtoWriter().string(1, value.name).message(2, new ProtoWriter().message(1, tensorType));
}

function attribute(name: string, value: number | number[] | { float: number }): ProtoWriter {
  const out = new ProtoWriter().string(1, name);
  if (Array.isArray(value)) {
    for (const v of value) out.int(8, v);
    return out.int(20, ATTRIBUTE_INTS);
  }
  if (typeof value === 'number') return out.int(3, value).int(20, ATTRIBUTE_INT);
  return out.float(2, value.float).int(20, ATTRIBUTE_FLOAT);
}

/** The model's bytes, ready to write to a .onnx file. */
export function encodeOnnxModel(graph: OnnxGraph): Uint8Array {
  const g = new ProtoWriter();
  graph.nodes.forEach((node, index) => {
    const n = new ProtoWriter();
    for (const input of node.inputs) n.string(1, input);
    for (const output of node.outputs) n.string(2, output);
    n.string(3, `${node.op.toLowerCase()}_${index}`).string(4, node.op);
    for (const [name, value] of Object.entries(node.attributes ?? {})) n.message(5, attribute(name, value));
    g.message(1, n);
  });
  g.string(2, 'graph');
  for (const init of graph.initializers) {
    const t = new ProtoWriter();
    for (const d of init.dims) t.int(1, d);
    const type =
      init.data instanceof Float32Array ? FLOAT : init.data instanceof Uint16Array ? FLOAT16 : INT64;
    t.int(2, type).string(8, init.name);
    t.bytes(9, new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength));
    g.message(5, t);
  }
  for (const input of graph.inputs) g.message(11, valueInfo(input));
  for (const output of graph.outputs) g.message(12, valueInfo(output));
  return new ProtoWriter()
    .int(1, 8) // IR version 8: opsets up to 18
    .string(2, 'infodisent-test')
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').int(2, graph.opset ?? 13))
    .finish();
}

/** Deterministic weights in [-scale, scale) from a 32-bit LCG. */
export function seededWeights(count: number, seed: number, scale = 0.5): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * 2 * scale;
  });
}

/** Float16 bit patterns of `values` (mantissa truncated, tiny values flushed to zero: test weights only). */
export function float16Bits(values: Float32Array): Uint16Array {
  const words = new Uint32Array(Float32Array.from(values).buffer);
  return Uint16Array.from(words, (u) => {
    const exponent = ((u >>> 23) & 0xff) - 127 + 15;
    return ((u >>> 16) & 0x8000) | (exponent <= 0 ? 0 : (exponent << 10) | ((u >>> 13) & 0x3ff));
  });
}

/** The float32 values of float16 bit patterns (normal numbers and zero). */
export function float16Values(bits: Uint16Array): Float32Array {
  return Float32Array.from(bits, (h) => {
    const exponent = (h >>> 10) & 0x1f;
    const magnitude = exponent === 0 ? 0 : (1 + (h & 0x3ff) / 1024) * 2 ** (exponent - 15);
    return h & 0x8000 ? -magnitude : magnitude;
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
}): { model: Uint8Array; weights: Float32Array[]; biases: Float32Array[] } {
  const { side, stages, seed, output, float16 = false } = options;
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
    const stored = float16 ? [float16Bits(w), float16Bits(b)] : [w, b];
    if (float16)
      [w, b] = stored.map((bits) => float16Values(bits as Uint16Array)) as [Float32Array, Float32Array];
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
    graphOutput = { name: 'features', shape: ['batch', channels, size, size] };
  } else if (output === 'nhwc') {
    nodes.push({
      op: 'Transpose',
      inputs: ['features'],
      outputs: ['features_nhwc'],
      attributes: { perm: [0, 2, 3, 1] },
    });
    graphOutput = { name: 'features_nhwc', shape: ['batch', size, size, channels] };
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
    graphOutput = { name: 'tokens', shape: ['batch', 1 + cells, channels] };
  } else {
    nodes.push(
      { op: 'GlobalAveragePool', inputs: ['features'], outputs: ['pooled'] },
      { op: 'Flatten', inputs: ['pooled'], outputs: ['logits'], attributes: { axis: 1 } },
    );
    graphOutput = { name: 'logits', shape: ['batch', channels] };
  }
  const model = encodeOnnxModel({
    nodes,
    initializers,
    inputs: [
      { name: 'image', shape: output === 'nhwc' ? ['batch', side, side, 3] : ['batch', 3, side, side] },
    ],
    outputs: [graphOutput],
  });
  return { model, weights, biases };
}
