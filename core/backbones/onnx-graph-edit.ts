/**
 * Reading and editing ONNX models (ModelProto) on the protobuf wire format, just enough of it: cutting a
 * graph at an intermediate value, giving it channels-last boundaries, and scanning its initializers. Every
 * field an edit does not touch is copied byte for byte, so weights are never decoded.
 */

import { InputError } from '../util/errors';
import {
  encodeInitializer,
  encodeNode,
  encodeValueInfo,
  ONNX_TYPE,
  type OnnxInitializer,
  type OnnxNode,
  type OnnxValue,
} from './onnx-encode';

interface WireField {
  field: number;
  wire: number;
  /** Byte range of the whole field, tag included. */
  start: number;
  end: number;
  /** Varint value, or the payload's start for a length-delimited field (payload ends at `end`). */
  value: number;
}

function readVarint(buf: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length; i++) {
    const byte = buf[i]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return [value, i + 1];
  }
  throw new Error('truncated varint');
}

/** The top-level fields of one protobuf message in buf[start, end). */
function readFields(buf: Uint8Array, start = 0, end = buf.length): WireField[] {
  const fields: WireField[] = [];
  let at = start;
  while (at < end) {
    const fieldStart = at;
    const [tag, next] = readVarint(buf, at);
    const wire = tag % 8;
    const field = Math.floor(tag / 8);
    let value = 0;
    if (wire === 0) [value, at] = readVarint(buf, next);
    else if (wire === 1) at = next + 8;
    else if (wire === 5) at = next + 4;
    else if (wire === 2) {
      const [length, payload] = readVarint(buf, next);
      value = payload;
      at = payload + length;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (at > end) throw new Error('truncated protobuf message');
    fields.push({ field, wire, start: fieldStart, end: at, value });
  }
  return fields;
}

function text(buf: Uint8Array, field: WireField): string {
  return Buffer.from(buf.buffer, buf.byteOffset + field.value, field.end - field.value).toString('utf8');
}

/** The strings of repeated field `number` in the message `field`. */
function strings(buf: Uint8Array, field: WireField, number: number): string[] {
  return readFields(buf, field.value, field.end)
    .filter((f) => f.field === number && f.wire === 2)
    .map((f) => text(buf, f));
}

function subMessages(buf: Uint8Array, field: WireField, number: number): WireField[] {
  return readFields(buf, field.value, field.end).filter((f) => f.field === number && f.wire === 2);
}

// ModelProto.graph, GraphProto.{node, initializer, input, output, value_info}, NodeProto.{input, output,
// attribute}, AttributeProto.{g, graphs}, TensorProto.{name, external_data, data_location}, *.name.
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const GRAPH_VALUE_INFO = 13;
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_ATTRIBUTE = 5;
const ATTRIBUTE_GRAPH = 6;
const ATTRIBUTE_GRAPHS = 11;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const VALUE_INFO_NAME = 1;
const FLOAT16 = 10; // TensorProto.DataType

function graphOf(buf: Uint8Array, file: string): WireField {
  let graph: WireField | undefined;
  try {
    graph = readFields(buf).find((f) => f.field === MODEL_GRAPH && f.wire === 2);
  } catch (error) {
    throw new InputError(`${file} is not an ONNX model (${(error as Error).message})`);
  }
  if (!graph) throw new InputError(`${file} is not an ONNX model (no graph)`);
  return graph;
}

/** Every value a node reads, including those its subgraphs (If, Loop, Scan bodies) read from the outer scope. */
function nodeReads(buf: Uint8Array, node: WireField): string[] {
  const reads = strings(buf, node, NODE_INPUT);
  for (const attribute of subMessages(buf, node, NODE_ATTRIBUTE)) {
    const graphs = [
      ...subMessages(buf, attribute, ATTRIBUTE_GRAPH),
      ...subMessages(buf, attribute, ATTRIBUTE_GRAPHS),
    ];
    for (const graph of graphs)
      for (const inner of subMessages(buf, graph, GRAPH_NODE)) reads.push(...nodeReads(buf, inner));
  }
  return reads.filter((name) => name !== '');
}

function lengthDelimited(field: number, payload: Uint8Array): Uint8Array {
  const header: number[] = [];
  for (let v = field * 8 + 2, first = true; first || v > 0; first = false) {
    header.push(v >= 0x80 ? (v & 0x7f) | 0x80 : v);
    v = Math.floor(v / 128);
  }
  for (let v = payload.length, first = true; first || v > 0; first = false) {
    header.push(v >= 0x80 ? (v & 0x7f) | 0x80 : v);
    v = Math.floor(v / 128);
  }
  return Buffer.concat([Uint8Array.from(header), payload]);
}

/**
 * The ONNX model `buf` (read from `file`, for errors) cut at value `target`: its only graph output becomes
 * `target`, with the type the graph declares for it (its value_info or output entry) or else untyped
 * (onnxruntime infers it; onnx.checker would want one), and the nodes, initializers, inputs and value infos
 * it does not depend on are dropped, since onnxruntime would otherwise still run them. Every other field is
 * copied byte for byte.
 */
export function cutOnnxModel(buf: Uint8Array, file: string, target: string): Uint8Array {
  const graph = graphOf(buf, file);
  const fields = readFields(buf, graph.value, graph.end);
  const nodes = fields.filter((f) => f.field === GRAPH_NODE && f.wire === 2);
  const needed = new Set([target]);
  const keep = new Set<WireField>();
  let found = false;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!strings(buf, node, NODE_OUTPUT).some((name) => needed.has(name))) continue;
    found ||= strings(buf, node, NODE_OUTPUT).includes(target);
    keep.add(node);
    for (const name of nodeReads(buf, node)) needed.add(name);
  }
  if (!found) {
    const outputs = fields
      .filter((f) => f.field === GRAPH_OUTPUT)
      .map((f) => strings(buf, f, VALUE_INFO_NAME)[0]);
    throw new Error(`${file} has no node producing '${target}' (graph outputs: ${outputs.join(', ')})`);
  }
  const nameOf = (f: WireField, number: number) => strings(buf, f, number)[0] ?? '';
  const declared = fields.find(
    (f) =>
      (f.field === GRAPH_VALUE_INFO || f.field === GRAPH_OUTPUT) && nameOf(f, VALUE_INFO_NAME) === target,
  );
  const output = declared
    ? lengthDelimited(GRAPH_OUTPUT, buf.subarray(declared.value, declared.end))
    : lengthDelimited(GRAPH_OUTPUT, lengthDelimited(VALUE_INFO_NAME, Buffer.from(target)));
  const kept: Uint8Array[] = [];
  let outputWritten = false;
  for (const f of fields) {
    const bytes = buf.subarray(f.start, f.end);
    if (f.wire !== 2) kept.push(bytes);
    else if (f.field === GRAPH_NODE) {
      if (keep.has(f)) kept.push(bytes);
    } else if (f.field === GRAPH_INITIALIZER) {
      if (needed.has(nameOf(f, TENSOR_NAME))) kept.push(bytes);
    } else if (f.field === GRAPH_INPUT || f.field === GRAPH_VALUE_INFO) {
      if (needed.has(nameOf(f, VALUE_INFO_NAME))) kept.push(bytes);
    } else if (f.field === GRAPH_OUTPUT) {
      if (!outputWritten) kept.push(output);
      outputWritten = true;
    } else kept.push(bytes);
  }
  const newGraph = lengthDelimited(MODEL_GRAPH, Buffer.concat(kept));
  return Buffer.concat([buf.subarray(0, graph.start), newGraph, buf.subarray(graph.end)]);
}

/**
 * What the initializers say about the model: the files (relative to it) holding those stored outside it,
 * as torch's exporter writes for large models, and whether any is float16.
 */
export function scanInitializers(buf: Uint8Array, file: string): { external: string[]; float16: boolean } {
  const graph = graphOf(buf, file);
  const locations = new Set<string>();
  let float16 = false;
  for (const tensor of readFields(buf, graph.value, graph.end)) {
    if (tensor.field !== GRAPH_INITIALIZER || tensor.wire !== 2) continue;
    const parts = readFields(buf, tensor.value, tensor.end);
    float16 ||= parts.some((f) => f.field === TENSOR_DATA_TYPE && f.wire === 0 && f.value === FLOAT16);
    if (!parts.some((f) => f.field === TENSOR_DATA_LOCATION && f.wire === 0 && f.value === 1)) continue;
    for (const entry of parts.filter((f) => f.field === TENSOR_EXTERNAL_DATA && f.wire === 2)) {
      const [key, value] = readFields(buf, entry.value, entry.end).map((f) => text(buf, f));
      if (key === 'location' && value) locations.add(value);
    }
  }
  return { external: [...locations].sort(), float16 };
}

/** Names every node, graph input, output and initializer of the main graph uses. */
function graphNames(buf: Uint8Array, fields: WireField[]): Set<string> {
  const names = new Set<string>();
  for (const f of fields) {
    if (f.wire !== 2) continue;
    if (f.field === GRAPH_NODE) {
      for (const name of [...strings(buf, f, NODE_INPUT), ...strings(buf, f, NODE_OUTPUT)]) names.add(name);
    } else if (f.field === GRAPH_INITIALIZER) names.add(strings(buf, f, TENSOR_NAME)[0] ?? '');
    else if (f.field === GRAPH_INPUT || f.field === GRAPH_OUTPUT || f.field === GRAPH_VALUE_INFO)
      names.add(strings(buf, f, VALUE_INFO_NAME)[0] ?? '');
  }
  return names;
}

/** The boundaries of a model given channels-last by withChannelsLast: what to feed and what to fetch. */
export interface ChannelsLastModel {
  model: Uint8Array;
  input: string;
  /** The input's NHWC dimensions. */
  inputShape: OnnxValue['shape'];
  /** The NHWC output, when one was asked for. */
  output?: string;
}

/** A model's graph fields, ready for an edit: fresh value names, graph inputs and outputs by name. */
function graphEdit(buf: Uint8Array, file: string) {
  const graph = graphOf(buf, file);
  const fields = readFields(buf, graph.value, graph.end);
  const taken = graphNames(buf, fields);
  const firstNode = fields.findIndex((f) => f.field === GRAPH_NODE && f.wire === 2);
  if (firstNode < 0) throw new Error(`${file} has no nodes`);
  return {
    /** `name` with `suffix`, numbered until it is no value's name in the graph yet. */
    fresh(name: string, suffix: string): string {
      let candidate = `${name}_${suffix}`;
      for (let i = 2; taken.has(candidate); i++) candidate = `${name}_${suffix}${i}`;
      taken.add(candidate);
      return candidate;
    },
    /** The graph input or output (`field`) named `name`; an error names the file if there is none. */
    named(field: typeof GRAPH_INPUT | typeof GRAPH_OUTPUT, name: string): WireField {
      const found = fields.find(
        (f) => f.field === field && f.wire === 2 && strings(buf, f, VALUE_INFO_NAME)[0] === name,
      );
      if (!found)
        throw new Error(`${file} has no graph ${field === GRAPH_INPUT ? 'input' : 'output'} '${name}'`);
      return found;
    },
    /**
     * The model with `before` (nodes, initializers) in front of the graph's first node, `after` behind its
     * last, and the fields of `swap` replaced; every other field is copied byte for byte.
     */
    splice(before: Uint8Array[], after: Uint8Array[], swap: Map<WireField, Uint8Array>): Uint8Array {
      const lastNode = fields.findLastIndex((f) => f.field === GRAPH_NODE && f.wire === 2);
      const kept: Uint8Array[] = [];
      fields.forEach((f, i) => {
        if (i === firstNode) kept.push(...before);
        kept.push(swap.get(f) ?? buf.subarray(f.start, f.end));
        if (i === lastNode) kept.push(...after);
      });
      const newGraph = lengthDelimited(MODEL_GRAPH, Buffer.concat(kept));
      return Buffer.concat([buf.subarray(0, graph.start), newGraph, buf.subarray(graph.end)]);
    },
  };
}

const graphNode = (spec: OnnxNode, name: string) => lengthDelimited(GRAPH_NODE, encodeNode(spec, name));

/**
 * The model `buf` (read from `file`) with channels-last boundaries: its NCHW image input is fed as NHWC
 * through a Transpose, and with `output` its NCHW feature map leaves as NHWC through another. onnxruntime
 * then converts the layouts on the execution provider, next to the data (its own NHWC layout pass may
 * cancel them), instead of a JavaScript loop on the main thread between batches. `input` and `output`
 * carry the NCHW dimensions of those values; the new names are returned.
 */
export function withChannelsLast(
  buf: Uint8Array,
  file: string,
  input: OnnxValue,
  output?: OnnxValue,
): ChannelsLastModel {
  const edit = graphEdit(buf, file);
  const toNhwc = (dims: OnnxValue['shape']) => [dims[0]!, dims[2]!, dims[3]!, dims[1]!];
  const transpose = (from: string, to: string, perm: number[]) =>
    graphNode({ op: 'Transpose', inputs: [from], outputs: [to], attributes: { perm } }, `${to}_transpose`);
  const swap = new Map<WireField, Uint8Array>();
  const inputName = edit.fresh(input.name, 'nhwc');
  const inputShape = toNhwc(input.shape);
  swap.set(
    edit.named(GRAPH_INPUT, input.name),
    lengthDelimited(GRAPH_INPUT, encodeValueInfo({ name: inputName, shape: inputShape })),
  );
  const after: Uint8Array[] = [];
  let outputName: string | undefined;
  if (output) {
    outputName = edit.fresh(output.name, 'nhwc');
    swap.set(
      edit.named(GRAPH_OUTPUT, output.name),
      lengthDelimited(GRAPH_OUTPUT, encodeValueInfo({ name: outputName, shape: toNhwc(output.shape) })),
    );
    after.push(transpose(output.name, outputName, [0, 2, 3, 1]));
  }
  return {
    model: edit.splice([transpose(inputName, input.name, [0, 3, 1, 2])], after, swap),
    input: inputName,
    inputShape,
    ...(outputName ? { output: outputName } : {}),
  };
}

/**
 * The model `buf` (read from `file`) fed with an image's pixels, uint8 NHWC, in place of its float NHWC
 * input `input`: the graph normalises them itself, looking each channel's value up in `table` (3 x 256,
 * channel-major, as core/data/preprocess.ts normalises), so the values it computes with are those of the
 * float input exactly. A GPU provider is then sent a quarter of the bytes. Returns the model and the new
 * input's name.
 */
export function withPixelInput(
  buf: Uint8Array,
  file: string,
  input: OnnxValue,
  table: Float32Array,
): { model: Uint8Array; input: string } {
  if (table.length !== 3 * 256) throw new Error(`a pixel table has 768 values, not ${table.length}`);
  const edit = graphEdit(buf, file);
  const pixels = edit.fresh(input.name, 'pixels');
  const [values, channels, tableName, offsets] = ['values', 'channels', 'table', 'offsets'].map((suffix) =>
    edit.fresh(input.name, suffix),
  ) as [string, string, string, string];
  const initializer = (init: OnnxInitializer) => lengthDelimited(GRAPH_INITIALIZER, encodeInitializer(init));
  const before = [
    initializer({ name: tableName, dims: [768], data: table }),
    initializer({ name: offsets, dims: [3], data: Int32Array.from([0, 256, 512]) }),
    graphNode(
      { op: 'Cast', inputs: [pixels], outputs: [values], attributes: { to: ONNX_TYPE.int32 } },
      `${values}_cast`,
    ),
    // Each value's index in the table: its channel's 256 entries start at 256 c.
    graphNode({ op: 'Add', inputs: [values, offsets], outputs: [channels] }, `${channels}_add`),
    graphNode(
      { op: 'Gather', inputs: [tableName, channels], outputs: [input.name], attributes: { axis: 0 } },
      `${input.name}_lookup`,
    ),
  ];
  const swap = new Map([
    [
      edit.named(GRAPH_INPUT, input.name),
      lengthDelimited(GRAPH_INPUT, encodeValueInfo({ name: pixels, shape: input.shape, type: 'uint8' })),
    ],
  ]);
  return { model: edit.splice(before, [], swap), input: pixels };
}
