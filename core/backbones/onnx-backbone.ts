import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { normalisationTable, PRESETS, type PresetName } from '../data/preprocess';
import type { FeatureShape } from '../features/feature-set';
import { findWebgpuAdapter } from '../tf/webgpu-adapter';
import type { ComputeRuntime } from '../util/compute-record';
import { InputError } from '../util/errors';
import { contentKey } from '../util/hash';
import { hardwareDescription, nvidiaGpuNames } from '../util/machine';
import type { Backbone } from './backbone';
import { cutOnnxModel, scanInitializers, withChannelsLast, withPixelInput } from './onnx-graph-edit';

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
  /**
   * Settings of the WebGPU provider: the layout its convolutions run in (default NHWC here) and Dawn's
   * validation (default onnxruntime's, 'basic').
   */
  webgpu?: OnnxWebGpuSettings;
}

export type OnnxWebGpuSettings = Pick<
  ort.InferenceSession.WebGpuExecutionProviderOption,
  'preferredLayout' | 'validationMode'
>;

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

// ------------------------------------------------------------ sessions

/** What an ONNX backbone on `provider` computes on: the CPU, or the GPU by nvidia-smi's name or Dawn's. */
async function providerRuntime(provider: OnnxProvider): Promise<ComputeRuntime> {
  let adapter: string | undefined;
  if (provider === 'webgpu' && nvidiaGpuNames().length === 0) {
    const { status } = await findWebgpuAdapter();
    if (status.found) adapter = status.description;
  }
  return { name: `onnxruntime ${provider}`, hardware: hardwareDescription(provider !== 'cpu', adapter) };
}

/** Whether onnxruntime-node's CUDA provider library is installed (it ships without it). */
export function cudaInstalled(): boolean {
  const bin = path.join(
    path.dirname(require.resolve('onnxruntime-node/package.json')),
    'bin',
    'napi-v6',
    process.platform,
    process.arch,
  );
  return existsSync(path.join(bin, 'libonnxruntime_providers_cuda.so'));
}

interface SessionSettings extends Pick<OnnxBackboneOptions, 'intraOpNumThreads' | 'spinning' | 'webgpu'> {
  graphOptimizationLevel: OnnxOptimization;
  /** Where the model's external data files lie: a model loaded from memory resolves them there. */
  folder: string;
}

/**
 * The layout onnxruntime's WebGPU provider runs convolutions in unless told otherwise. Its own default is
 * NCHW; NHWC ran ResNet-50 1.37x (float32) and 1.53x (float16) faster on an H200, with the same features
 * (bench/NOTES.md, extract).
 */
const WEBGPU_LAYOUT = 'NHWC';

/**
 * onnxruntime session config entries from INFODISENT_ORT_CONFIG ('KEY=VALUE,...'), set on every session
 * after this project's own: to try a setting of onnxruntime or its WebGPU provider without a rebuild, e.g.
 * `ep.webgpuexecutionprovider.maxNumPendingDispatches=64` (keys: onnxruntime_session_options_config_keys.h
 * and the provider's options).
 */
export function ortSessionConfig(text = process.env['INFODISENT_ORT_CONFIG'] ?? ''): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const entry of text.split(',').filter((item) => item.trim())) {
    const match = /^([A-Za-z][\w.]*)=(\S+)$/.exec(entry.trim());
    if (!match)
      throw new InputError(
        `INFODISENT_ORT_CONFIG: '${entry}' is not KEY=VALUE (e.g. session.intra_op.allow_spinning=0)`,
      );
    entries[match[1]!] = match[2]!;
  }
  return entries;
}

function createSession(
  model: Uint8Array,
  provider: OnnxProvider,
  settings: SessionSettings,
): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders:
      provider === 'webgpu'
        ? [{ name: 'webgpu', preferredLayout: WEBGPU_LAYOUT, ...settings.webgpu }]
        : [provider],
    graphOptimizationLevel: settings.graphOptimizationLevel,
    logSeverityLevel: 3,
    // onnxruntime_session_options_config_keys.h; the Node binding takes string values only.
    extra: {
      'session.intra_op.allow_spinning': settings.spinning ? '1' : '0',
      'session.model_external_initializers_file_folder_path': settings.folder,
      ...ortSessionConfig(),
    },
  };
  if (settings.intraOpNumThreads !== undefined) options.intraOpNumThreads = settings.intraOpNumThreads;
  return ort.InferenceSession.create(model, options);
}

/** Copies items [0, n) of an NHWC map or of ViT tokens (dropping the class token) into `dst` as [n, H, W, C]. */
function toHwc(
  src: Float32Array,
  n: number,
  shape: FeatureShape,
  layout: OnnxLayout | 'tokens',
  dst: Float32Array,
): void {
  const cells = shape.height * shape.width;
  const c = shape.channels;
  if (layout !== 'tokens') dst.set(src.subarray(0, n * cells * c));
  else {
    for (let b = 0; b < n; b++)
      dst.set(src.subarray((b * (cells + 1) + 1) * c, (b + 1) * (cells + 1) * c), b * cells * c);
  }
}

/** A shape for a graph input or output declaration: open dimensions become named ones. */
function declaredShape(dims: Dims): (number | string)[] {
  return dims.map((d, i) => (typeof d === 'number' ? (d > 0 ? d : `d${i}`) : d || `d${i}`));
}

async function readModelFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`${file}: no such ONNX model file`);
    if (code === 'EISDIR') throw new InputError(`${file} is a folder, not an ONNX model file`);
    throw error;
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
  const original = options.model ?? (await readModelFile(file));
  const hash = createHash('sha256').update(original);
  const { external, float16 } = scanInitializers(original, file);
  const folder = path.dirname(file);
  for (const location of external) hash.update(await readFile(path.resolve(folder, location)));
  const fileHash = hash.digest('hex');

  // What the model takes and gives, from a CPU session without graph optimisation (quick to create): the
  // session that runs it is created once, for the model as it will run (cut, channels-last).
  const inspect = (model: Uint8Array) =>
    createSession(model, 'cpu', { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1, folder });
  let model: Uint8Array = original;
  let inspection = await inspect(model);
  try {
    if (inspection.inputNames.length !== 1)
      throw new Error(
        `${file}: expected one image input, found ${inspection.inputNames.length} (${inspection.inputNames.join(', ')})`,
      );
    const outputName = options.output ?? inspection.outputNames[0]!;
    if (options.output === undefined && inspection.outputNames.length > 1)
      throw new Error(
        `${file} has outputs ${inspection.outputNames.join(', ')}: name the feature map in 'output'`,
      );
    const cut = inspection.outputNames.length > 1 || inspection.outputNames[0] !== outputName;
    if (cut) {
      model = cutOnnxModel(original, file, outputName);
      await inspection.release();
      inspection = await inspect(model);
    }

    const input = inspection.inputMetadata[0]!;
    const inputName = input.name;
    if (!input.isTensor || input.type !== 'float32' || input.shape.length !== 4)
      throw new Error(
        `${file}: input '${inputName}' must be a float32 image batch of rank 4, found ${input.isTensor ? `${input.type} ${formatDims(input.shape)}` : 'a non-tensor'}`,
      );
    const inferred: OnnxLayout | undefined =
      input.shape[1] === 3 ? 'NCHW' : input.shape[3] === 3 ? 'NHWC' : undefined;
    if (
      !options.layout &&
      !inferred &&
      typeof input.shape[1] === 'number' &&
      typeof input.shape[3] === 'number'
    )
      throw new InputError(
        `${file}: input '${inputName}' ${formatDims(input.shape)} has no axis of 3 colour channels (axis 1 for NCHW, axis 3 for NHWC): the pipeline feeds RGB images`,
      );
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

    const metadata = inspection.outputMetadata.find((m) => m.name === outputName);
    let outputDims: Dims = metadata?.isTensor ? metadata.shape : [];
    if (outputDims.length < 2 || outputDims.slice(1).some((d) => typeof d !== 'number')) {
      // Shape inference left dimensions open (an intermediate value): run one zero batch to see them.
      const n = fixedBatch ?? 1;
      const zeros = new ort.Tensor('float32', new Float32Array(n * side * side * 3), inputDims(n));
      outputDims = (await inspection.run({ [inputName]: zeros }, [outputName]))[outputName]!.dims;
    }
    const { shape, outputLayout } = featureMapOf(file, outputName, outputDims, layout);
    const layoutOverride = layout !== (inferred ?? 'NCHW');
    return await openBackbone({
      ...options,
      file,
      model,
      fileHash,
      float16,
      folder,
      inputName,
      inputShape: declaredShape(input.shape),
      outputName,
      outputShape: declaredShape([input.shape[0]!, ...outputDims.slice(1)]),
      shape,
      outputLayout,
      layout,
      fixedBatch,
      // The file's hash alone, unless a cut or a layout other than the inferred one changes what it computes.
      fingerprint:
        cut || layoutOverride
          ? contentKey({
              model: fileHash,
              output: cut ? outputName : undefined,
              layout: layoutOverride ? layout : undefined,
            })
          : fileHash.slice(0, 16),
    });
  } finally {
    await inspection.release();
  }
}

/** What loadOnnxBackbone learnt of a model, for the session that runs it. */
interface InspectedModel extends OnnxBackboneOptions {
  model: Uint8Array;
  fileHash: string;
  float16: boolean;
  folder: string;
  inputName: string;
  inputShape: (number | string)[];
  outputName: string;
  outputShape: (number | string)[];
  shape: FeatureShape;
  outputLayout: OnnxLayout | 'tokens';
  layout: OnnxLayout;
  fixedBatch: number | undefined;
  fingerprint: string;
}

/** Images per run on a GPU provider: enough to fill the device between two batches' host work. */
const GPU_BATCH_SIZE = 64;

async function openBackbone(inspected: InspectedModel): Promise<OnnxBackbone> {
  const { file, shape, outputLayout, fixedBatch, inputName, outputName } = inspected;
  const preset = PRESETS[inspected.preset];
  const side = preset.cropSize;
  // Channels-last in and out, whatever the model's own layout: the pipeline's batches are NHWC.
  const channelsLast =
    inspected.layout === 'NCHW'
      ? withChannelsLast(
          inspected.model,
          file,
          { name: inputName, shape: inspected.inputShape },
          outputLayout === 'NCHW' ? { name: outputName, shape: inspected.outputShape } : undefined,
        )
      : { model: inspected.model, input: inputName, inputShape: inspected.inputShape, output: undefined };
  const fetch = channelsLast.output ?? outputName;
  // The same graph fed the crops' pixels (uint8), normalised inside by the preset's table: extraction's path.
  const pixelModel = withPixelInput(
    channelsLast.model,
    file,
    { name: channelsLast.input, shape: channelsLast.inputShape },
    normalisationTable(preset),
  );

  const providers: OnnxProvider[] =
    inspected.provider === 'auto'
      ? [...(cudaInstalled() ? (['cuda'] as const) : []), 'webgpu', 'cpu']
      : [inspected.provider ?? 'cpu'];
  const providerFailures: string[] = [];
  const levelFor = (provider: OnnxProvider): OnnxOptimization =>
    inspected.graphOptimizationLevel ?? (inspected.float16 && provider === 'cpu' ? 'extended' : 'all');
  const sessionOf = (model: Uint8Array, provider: OnnxProvider) =>
    createSession(model, provider, { ...inspected, graphOptimizationLevel: levelFor(provider) });
  let session: ort.InferenceSession | undefined;
  let provider: OnnxProvider | undefined;
  for (const candidate of providers) {
    if (candidate === 'webgpu' && inspected.provider === 'auto') {
      const { status } = await findWebgpuAdapter();
      if (status.found && status.software) {
        providerFailures.push(
          `webgpu: passed over, the adapter is a software rasteriser (${status.description}); provider 'webgpu' forces it`,
        );
        continue;
      }
    }
    try {
      session = await sessionOf(pixelModel.model, candidate);
      provider = candidate;
      break;
    } catch (error) {
      providerFailures.push(`${candidate}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  if (!session || !provider)
    throw new Error(`${file}: no execution provider could load the model (${providerFailures.join('; ')})`);

  const itemValues = shape.height * shape.width * shape.channels;
  const itemOutput =
    outputLayout === 'tokens' ? (shape.height * shape.width + 1) * shape.channels : itemValues;
  const itemInput = side * side * 3;
  const pixelSession = session;
  const chosen = provider;
  // The float input's session, made when a caller first sends normalised values (explanations' noised
  // copies, benches): extraction sends pixels and never needs it.
  let floatSession: Promise<ort.InferenceSession> | undefined;
  const run = async (batch: Float32Array | Uint8Array, n: number): Promise<Float32Array> => {
    const pixels = batch instanceof Uint8Array;
    if (!pixels) floatSession ??= sessionOf(channelsLast.model, chosen);
    const runner = pixels ? pixelSession : await floatSession!;
    // onnxruntime-node refuses an array over shared memory ("Invalid argument"): such batches are copied.
    const input = batch.buffer instanceof SharedArrayBuffer ? batch.slice() : batch;
    const tensor = new ort.Tensor(pixels ? 'uint8' : 'float32', input, [n, side, side, 3]);
    const result = await runner.run({ [pixels ? pixelModel.input : channelsLast.input]: tensor }, [fetch]);
    tensor.dispose();
    const out = result[fetch]!;
    if (out.type !== 'float32')
      throw new Error(`${file}: output '${outputName}' is ${out.type}; only float32 outputs are supported`);
    if (out.data.length !== n * itemOutput)
      throw new Error(
        `${file}: output '${outputName}' came out ${formatDims(out.dims)}, expected ${n} items of ${itemOutput} values`,
      );
    return out.data as Float32Array;
  };
  /** Features [n, H, W, C] of a batch, run in the model's fixed batches where it has one. */
  const extract = async (batch: Float32Array | Uint8Array, n: number): Promise<Float32Array> => {
    if (batch.length !== n * itemInput)
      throw new Error(`${file}: expected ${n} images of ${side}x${side}x3, got ${batch.length} values`);
    const step = fixedBatch ?? n;
    // One run whose output is already [n, H, W, C]: the provider's array is the result, not copied again.
    if (step === n && outputLayout !== 'tokens') return run(batch, n);
    const features = new Float32Array(n * itemValues);
    for (let start = 0; start < n; start += step) {
      const count = Math.min(step, n - start);
      let chunk = batch.subarray(start * itemInput, (start + count) * itemInput);
      if (count < step) {
        const padded =
          batch instanceof Uint8Array ? new Uint8Array(step * itemInput) : new Float32Array(step * itemInput);
        padded.set(chunk);
        chunk = padded;
      }
      toHwc(await run(chunk, step), count, shape, outputLayout, features.subarray(start * itemValues));
    }
    return features;
  };

  return {
    name: inspected.name ?? path.basename(file).replace(/\.onnx$/, ''),
    fingerprint: inspected.fingerprint,
    inputSize: side,
    featureShape: shape,
    preprocessing: {
      resize: preset.resizeTo,
      crop: preset.cropSize,
      scale: preset.std.every((s) => s === 1) && preset.mean.every((m) => m === 0) ? 'unit' : 'imagenet',
    },
    preset: inspected.preset,
    batchSize: fixedBatch ?? (provider === 'cpu' ? undefined : GPU_BATCH_SIZE),
    provider,
    providerFailures,
    runtime: await providerRuntime(provider),
    graphOptimizationLevel: levelFor(provider),
    inputName,
    outputName,
    outputLayout,
    extract: (images: Float32Array, n: number) => extract(images, n),
    extractPixels: (pixels: Uint8Array, n: number) => extract(pixels, n),
    dispose() {
      void pixelSession.release();
      void floatSession?.then((float) => float.release());
    },
  };
}
