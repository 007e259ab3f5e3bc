/**
 * Writes ONNX models (ModelProto, protobuf wire format) from a plain description: for models built in
 * code (core/backbones/keras-onnx.ts) and for tests and the CPU bench, which get real model files without
 * PyTorch. Only what those models use is encoded: float32, float16, int32 and int64 initializers as
 * raw_data, INT/INTS/FLOAT attributes, float and uint8 graph inputs and outputs.
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
  data: Float32Array | BigInt64Array | Int32Array | Uint16Array;
}

/** A graph input or output; a string dimension is symbolic (e.g. 'batch'). Float unless `type` says. */
export interface OnnxValue {
  name: string;
  shape: (number | string)[];
  type?: 'float' | 'uint8';
}

export interface OnnxGraph {
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  opset?: number;
}

/** TensorProto.DataType values. */
export const ONNX_TYPE = { float: 1, uint8: 2, int32: 6, int64: 7, float16: 10 } as const;
const { float: FLOAT, int32: INT32, int64: INT64, float16: FLOAT16 } = ONNX_TYPE;
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
  const tensorType = new ProtoWriter().int(1, ONNX_TYPE[value.type ?? 'float']).message(2, shape);
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

function node(spec: OnnxNode, name: string): ProtoWriter {
  const n = new ProtoWriter();
  for (const input of spec.inputs) n.string(1, input);
  for (const output of spec.outputs) n.string(2, output);
  n.string(3, name).string(4, spec.op);
  for (const [key, value] of Object.entries(spec.attributes ?? {})) n.message(5, attribute(key, value));
  return n;
}

/** One NodeProto, for edits of existing models (core/backbones/onnx-graph-edit.ts). */
export function encodeNode(spec: OnnxNode, name: string): Uint8Array {
  return node(spec, name).finish();
}

/** One float32 ValueInfoProto (a graph input or output), for edits of existing models. */
export function encodeValueInfo(value: OnnxValue): Uint8Array {
  return valueInfo(value).finish();
}

/** The model's bytes, ready to write to a .onnx file. */
export function encodeOnnxModel(graph: OnnxGraph, producer = 'infodisent'): Uint8Array {
  return encodeModel(graph, producer);
}

/**
 * The model with its initializers' bytes in a separate file, `location` (relative to the model), as
 * exporters write models over protobuf's 2 GB: the model's bytes and that file's.
 */
export function encodeOnnxModelWithExternalData(
  graph: OnnxGraph,
  location: string,
): { model: Uint8Array; data: Uint8Array } {
  const external = { location, chunks: [] as Uint8Array[], offset: 0 };
  const model = encodeModel(graph, 'infodisent', external);
  return { model, data: Buffer.concat(external.chunks) };
}

function tensorTypeOf(data: OnnxInitializer['data']): number {
  if (data instanceof Float32Array) return FLOAT;
  if (data instanceof Uint16Array) return FLOAT16;
  return data instanceof Int32Array ? INT32 : INT64;
}

/** A TensorProto, its bytes as raw_data or, with `external`, appended to the external data file. */
function initializer(
  init: OnnxInitializer,
  external?: { location: string; chunks: Uint8Array[]; offset: number },
): ProtoWriter {
  const t = new ProtoWriter();
  for (const d of init.dims) t.int(1, d);
  t.int(2, tensorTypeOf(init.data)).string(8, init.name);
  const bytes = new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength);
  if (!external) return t.bytes(9, bytes);
  // TensorProto.external_data (StringStringEntryProto key/value) and data_location EXTERNAL.
  const entry = (key: string, value: string | number) =>
    t.message(13, new ProtoWriter().string(1, key).string(2, String(value)));
  entry('location', external.location);
  entry('offset', external.offset);
  entry('length', bytes.length);
  t.int(14, 1);
  external.chunks.push(bytes);
  external.offset += bytes.length;
  return t;
}

/** One TensorProto with its data inline, for edits of existing models (core/backbones/onnx-graph-edit.ts). */
export function encodeInitializer(init: OnnxInitializer): Uint8Array {
  return initializer(init).finish();
}

function encodeModel(
  graph: OnnxGraph,
  producer: string,
  external?: { location: string; chunks: Uint8Array[]; offset: number },
): Uint8Array {
  const g = new ProtoWriter();
  graph.nodes.forEach((entry, index) => {
    g.message(1, node(entry, `${entry.op.toLowerCase()}_${index}`));
  });
  g.string(2, 'graph');
  for (const init of graph.initializers) g.message(5, initializer(init, external));
  for (const input of graph.inputs) g.message(11, valueInfo(input));
  for (const output of graph.outputs) g.message(12, valueInfo(output));
  return new ProtoWriter()
    .int(1, 8) // IR version 8: opsets up to 18
    .string(2, producer)
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').int(2, graph.opset ?? 13))
    .finish();
}
