import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { PRESETS, type PresetName } from '../data/preprocess';
import type { FeatureShape } from '../features/feature-set';
import { contentKey } from '../util/hash';
import type { Backbone } from './backbone';

export type OnnxProvider = 'cpu' | 'webgpu' | 'cuda';
export type OnnxLayout = 'NCHW' | 'NHWC';
export type OnnxOptimization = 'disabled' | 'basic' | 'extended' | 'all';

export interface OnnxBackboneOptions {
  /** The .onnx file, ideally ending at the last feature map (infra/export_backbones.py writes such files). */
  file: string;
  /** The model's bytes when it was built in memory: `file` then only names it in messages. */
  model?: Uint8Array;
  /** Registry name; default: the file name without '.onnx'. */
  name?: string;
  /** The torchvision transform the weights were trained with (core/data/preprocess.ts). */
  preset: PresetName;
  /** Default 'cpu'. 'auto' tries cuda (when its provider library is installed), then webgpu, then cpu. */
  provider?: OnnxProvider | 'auto';
  /** The value to cut at: a graph output, or any intermediate value (the graph is pruned to it). */
  output?: string;
  /** Tensor layout of the model's input and rank-4 output; default: inferred from the input (3 channels at axis 1 or 3). */
  layout?: OnnxLayout;
  /** CPU provider threads; default: onnxruntime's (one per physical core). */
  intraOpNumThreads?: number;
  /**
   * Whether idle CPU provider threads spin while waiting for work. Default false: the backbone shares
   * its cores with the threads preparing the next batch (and, in a pipeline worker, with other stages),
   * and a spinning thread takes a core they need; on this project's shared 2-core machine spinning
   * made ResNet-50 slower, not faster (bench/NOTES.md).
   */
  spinning?: boolean;
  /**
   * onnxruntime's graph optimisation level. Default 'all', except 'extended' for a model with float16
   * weights on the CPU provider: onnxruntime 1.30-1.32 crashes (SIGSEGV) creating a CPU session for
   * the float16 ViT-B/16 at 'all', and float16 runs on the CPU through casts anyway.
   */
  graphOptimizationLevel?: OnnxOptimization;
}

export interface OnnxBackbone extends Backbone {
  readonly preset: PresetName;
  /** The execution provider the session was created with (nodes it lacks kernels for still run on the CPU). */
  readonly provider: OnnxProvider;
  /** Why each provider tried before `provider` failed ('auto' only). */
  readonly providerFailures: string[];
  readonly graphOptimizationLevel: OnnxOptimization;
  readonly inputName: string;
  readonly outputName: string;
  /** How the model's output maps to [n, H, W, C]: transposed, as is, or tokens without the class token. */
  readonly outputLayout: OnnxLayout | 'tokens';
}

type Dims = readonly (number | string)[];

function formatDims(dims: Dims): string {
  return `[${dims.join(', ')}]`;
}

/** The feature map an output shape describes, or an error naming the file and the shape. */
function featureMapOf(
  file: string,
  output: string,
  dims: Dims,
  layout: OnnxLayout,
): { shape: FeatureShape; outputLayout: OnnxLayout | 'tokens' } {
  const size = (i: number) => dims[i] as number;
  if (dims.slice(1).every((d) => typeof d === 'number' && d > 0)) {
    if (dims.length === 4) {
      const shape =
        layout === 'NCHW'
          ? { height: size(2), width: size(3), channels: size(1) }
          : { height: size(1), width: size(2), channels: size(3) };
      if (shape.height * shape.width > 1) return { shape, outputLayout: layout };
    }
    if (dims.length === 3) {
      const side = Math.round(Math.sqrt(size(1) - 1));
      if (side > 1 && side * side === size(1) - 1)
        return { shape: { height: side, width: side, channels: size(2) }, outputLayout: 'tokens' };
    }
  }
  throw new Error(
    `${file}: output '${output}' has shape ${formatDims(dims)}, which is not a feature map ` +
      `(expected [n, C, H, W] or [n, H, W, C] with H*W > 1, or ViT tokens [n, 1 + H*W, D] with H = W); ` +
      `cut the model at its last feature map (infra/export_backbones.py) or name that value in 'output'`,
  );
}

// ------------------------------------------------------------ protobuf wire format, just enough of ONNX

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
  const graph = readFields(buf).find((f) => f.field === MODEL_GRAPH && f.wire === 2);
  if (!graph) throw new Error(`${file} is not an ONNX model (no graph)`);
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
function scanInitializers(buf: Uint8Array, file: string): { external: string[]; float16: boolean } {
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

// ------------------------------------------------------------ sessions

function cudaInstalled(): boolean {
  const bin = path.join(
    path.dirname(require.resolve('onnxruntime-node/package.json')),
    'bin',
    'napi-v6',
    process.platform,
    process.arch,
  );
  return existsSync(path.join(bin, 'libonnxruntime_providers_cuda.so'));
}

async function createSession(
  model: string | Uint8Array,
  provider: OnnxProvider,
  graphOptimizationLevel: OnnxOptimization,
  threads: Pick<OnnxBackboneOptions, 'intraOpNumThreads' | 'spinning'>,
): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: provider === 'webgpu' ? [{ name: 'webgpu' }] : [provider],
    graphOptimizationLevel,
    logSeverityLevel: 3,
    // onnxruntime_session_options_config_keys.h; the Node binding takes string values only.
    extra: { 'session.intra_op.allow_spinning': threads.spinning ? '1' : '0' },
  };
  if (threads.intraOpNumThreads !== undefined) options.intraOpNumThreads = threads.intraOpNumThreads;
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

function nhwcToNchw(src: Float32Array, n: number, side: number, dst: Float32Array): void {
  const plane = side * side;
  for (let b = 0; b < n; b++) {
    const base = b * plane * 3;
    for (let p = 0; p < plane; p++) {
      dst[base + p] = src[base + p * 3]!;
      dst[base + plane + p] = src[base + p * 3 + 1]!;
      dst[base + 2 * plane + p] = src[base + p * 3 + 2]!;
    }
  }
}

/** Writes items [0, n) of the model's output into `dst` as [n, H, W, C]. */
function toHwc(
  src: Float32Array,
  n: number,
  shape: FeatureShape,
  layout: OnnxLayout | 'tokens',
  dst: Float32Array,
): void {
  const cells = shape.height * shape.width;
  const c = shape.channels;
  if (layout === 'NHWC') dst.set(src.subarray(0, n * cells * c));
  else if (layout === 'tokens') {
    for (let b = 0; b < n; b++)
      dst.set(src.subarray((b * (cells + 1) + 1) * c, (b + 1) * (cells + 1) * c), b * cells * c);
  } else {
    for (let b = 0; b < n; b++) {
      const base = b * cells * c;
      for (let ch = 0; ch < c; ch++) {
        const row = base + ch * cells;
        for (let p = 0; p < cells; p++) dst[base + p * c + ch] = src[row + p]!;
      }
    }
  }
}

/**
 * A backbone from an ONNX file run by onnxruntime-node. Images arrive as the pipeline's NHWC batches,
 * preprocessed by `preset`; features leave as [n, H, W, C] whatever the model's own layout.
 */
export async function loadOnnxBackbone(options: OnnxBackboneOptions): Promise<OnnxBackbone> {
  const file = options.model ? options.file : path.resolve(options.file);
  const preset = PRESETS[options.preset];
  if (!preset) throw new Error(`unknown preprocessing preset '${options.preset}'`);
  let bytes: Uint8Array | undefined = options.model ?? (await readFile(file));
  const hash = createHash('sha256').update(bytes);
  const { external, float16 } = scanInitializers(bytes, file);
  for (const location of external) hash.update(await readFile(path.resolve(path.dirname(file), location)));
  const fileHash = hash.digest('hex');

  const providers: OnnxProvider[] =
    options.provider === 'auto'
      ? [...(cudaInstalled() ? (['cuda'] as const) : []), 'webgpu', 'cpu']
      : [options.provider ?? 'cpu'];
  const providerFailures: string[] = [];
  const levelFor = (provider: OnnxProvider): OnnxOptimization =>
    options.graphOptimizationLevel ?? (float16 && provider === 'cpu' ? 'extended' : 'all');
  const open = async (model: string | Uint8Array) => {
    providerFailures.length = 0;
    for (const provider of providers) {
      try {
        const session = await createSession(model, provider, levelFor(provider), options);
        return { session, provider };
      } catch (error) {
        providerFailures.push(`${provider}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    throw new Error(`${file}: no execution provider could load the model (${providerFailures.join('; ')})`);
  };

  let { session, provider } = await open(options.model ?? file);
  if (session.inputNames.length !== 1)
    throw new Error(
      `${file}: expected one image input, found ${session.inputNames.length} (${session.inputNames.join(', ')})`,
    );
  let outputName = options.output ?? session.outputNames[0]!;
  if (options.output === undefined && session.outputNames.length > 1)
    throw new Error(
      `${file} has outputs ${session.outputNames.join(', ')}: name the feature map in 'output'`,
    );
  const cut = session.outputNames.length > 1 || session.outputNames[0] !== outputName;
  if (cut) {
    // Cutting rewrites the graph and loads it from memory, where relative external data cannot be found.
    if (external.length > 0)
      throw new Error(
        `${file}: cannot cut at '${outputName}' a model with external data; export it cut instead`,
      );
    const model = cutOnnxModel(bytes, file, outputName);
    await session.release();
    ({ session, provider } = await open(model));
    outputName = session.outputNames[0]!;
  }
  bytes = undefined;

  const input = session.inputMetadata[0]!;
  const inputName = input.name;
  if (!input.isTensor || input.type !== 'float32' || input.shape.length !== 4)
    throw new Error(
      `${file}: input '${inputName}' must be a float32 image batch of rank 4, found ${input.isTensor ? `${input.type} ${formatDims(input.shape)}` : 'a non-tensor'}`,
    );
  const inferred: OnnxLayout | undefined =
    input.shape[1] === 3 ? 'NCHW' : input.shape[3] === 3 ? 'NHWC' : undefined;
  const layout = options.layout ?? inferred ?? 'NCHW';
  const side = preset.cropSize;
  const [height, width] =
    layout === 'NCHW' ? [input.shape[2], input.shape[3]] : [input.shape[1], input.shape[2]];
  for (const dim of [height, width]) {
    if (typeof dim === 'number' && dim !== side)
      throw new Error(
        `${file}: input '${inputName}' ${formatDims(input.shape)} is not ${side}x${side}, the crop of preset '${options.preset}'`,
      );
  }
  // A model exported without a dynamic batch axis runs its fixed batch, padded with zeros.
  const fixedBatch = typeof input.shape[0] === 'number' && input.shape[0] > 0 ? input.shape[0] : undefined;
  const inputDims = (n: number) => (layout === 'NCHW' ? [n, 3, side, side] : [n, side, side, 3]);

  const run = async (
    images: Float32Array,
    n: number,
  ): Promise<{ data: Float32Array; dims: readonly number[] }> => {
    const data = layout === 'NCHW' ? new Float32Array(images.length) : images;
    if (layout === 'NCHW') nhwcToNchw(images, n, side, data);
    const tensor = new ort.Tensor('float32', data, inputDims(n));
    const result = await session.run({ [inputName]: tensor }, [outputName]);
    tensor.dispose();
    const out = result[outputName]!;
    if (out.type !== 'float32')
      throw new Error(`${file}: output '${outputName}' is ${out.type}; only float32 outputs are supported`);
    return { data: out.data as Float32Array, dims: out.dims };
  };

  const metadata = session.outputMetadata.find((m) => m.name === outputName);
  let outputDims: Dims = metadata?.isTensor ? metadata.shape : [];
  if (outputDims.length < 2 || outputDims.slice(1).some((d) => typeof d !== 'number')) {
    // Shape inference left dimensions open (an intermediate value): run one zero batch to see them.
    const probeBatch = fixedBatch ?? 1;
    outputDims = (await run(new Float32Array(probeBatch * side * side * 3), probeBatch)).dims;
  }
  const { shape, outputLayout } = featureMapOf(file, outputName, outputDims, layout);
  const itemValues = shape.height * shape.width * shape.channels;
  const itemOutput =
    outputLayout === 'tokens' ? (shape.height * shape.width + 1) * shape.channels : itemValues;

  // The file's hash alone, unless a cut or a layout other than the inferred one changes what it computes.
  const layoutOverride = layout !== (inferred ?? 'NCHW');
  const fingerprint =
    cut || layoutOverride
      ? contentKey({
          model: fileHash,
          output: cut ? outputName : undefined,
          layout: layoutOverride ? layout : undefined,
        })
      : fileHash.slice(0, 16);

  return {
    name: options.name ?? path.basename(file).replace(/\.onnx$/, ''),
    fingerprint,
    inputSize: side,
    featureShape: shape,
    preprocessing: {
      resize: preset.resizeTo,
      crop: preset.cropSize,
      scale: preset.std.every((s) => s === 1) && preset.mean.every((m) => m === 0) ? 'unit' : 'imagenet',
    },
    preset: options.preset,
    provider,
    providerFailures,
    graphOptimizationLevel: levelFor(provider),
    inputName,
    outputName,
    outputLayout,
    async extract(images: Float32Array, n: number): Promise<Float32Array> {
      const itemInput = side * side * 3;
      if (images.length !== n * itemInput)
        throw new Error(`${file}: expected ${n} images of ${side}x${side}x3, got ${images.length} values`);
      const features = new Float32Array(n * itemValues);
      const step = fixedBatch ?? n;
      for (let start = 0; start < n; start += step) {
        const count = Math.min(step, n - start);
        let chunk = images.subarray(start * itemInput, (start + count) * itemInput);
        if (count < step) {
          const padded = new Float32Array(step * itemInput);
          padded.set(chunk);
          chunk = padded;
        }
        const out = await run(chunk, step);
        if (out.data.length !== step * itemOutput)
          throw new Error(
            `${file}: output '${outputName}' came out ${formatDims(out.dims)}, expected ${step} items of ${itemOutput} values`,
          );
        toHwc(out.data, count, shape, outputLayout, features.subarray(start * itemValues));
      }
      return features;
    },
    dispose() {
      void session.release();
    },
  };
}
