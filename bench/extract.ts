import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { Backbone } from '../core/backbones/backbone';
import { loadNsfwjsMobileNetV2 } from '../core/backbones/nsfwjs-mobilenet';
import { loadOnnxBackbone } from '../core/backbones/onnx-backbone';
import type { BackboneSpec } from '../core/backbones/registry';
import type { DatasetManifest } from '../core/data/dataset';
import { PRESETS, type PreprocessPreset, type PresetName } from '../core/data/preprocess';
import { extractFeaturesInProcesses } from '../core/features/extract-processes';
import type { FeatureDtype } from '../core/features/feature-set';
import { DEFAULT_PREPROCESS_THREADS, extractFeatures } from '../core/features/feature-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { cpuDescription, machineDescription } from '../core/util/machine';
import { plural } from '../core/util/plural';
import { repoRoot } from '../infra/paths';
import { convStackModel } from '../test/support/onnx-graph';
import { referencePython } from '../test/support/python';
import type { BenchRow } from './rows';

export interface BenchExtractOptions {
  /** Images run through each ONNX case. Default 64. */
  images?: number;
  /** Images through MobileNetV2. Default: `images`. */
  mobilenetImages?: number;
  /** Default 16. */
  batchSize?: number;
  /** onnxruntime and PyTorch threads. Default: the machine's cores. */
  threads?: number;
  /** ONNX model to time; default INFODISENT_ONNX_RESNET50, else a generated conv stack (see below). */
  onnxFile?: string;
  /**
   * Rounds, each timing the Node side and then the reference. Default 3. Each figure is the best round
   * of its side: on a machine shared with other jobs, load comes and goes within a run, and the best
   * round of each side is the one least disturbed by it.
   */
  rounds?: number;
  /** Images through the host-side case (an instant backbone; see instantResNet50Maps). Default 512. */
  hostImages?: number;
}

interface ReferenceCase {
  name: string;
  engine: 'torch' | 'onnxruntime' | 'none';
  reason: string;
  images: number;
  preprocess_seconds: number;
  model_seconds: number | null;
}

/** CUB-like photos (500 x 375, JPEG) of smooth colour fields with noise, so decoding and resizing do real work. */
export async function writeImages(dir: string, count: number): Promise<string[]> {
  const width = 500;
  const height = 375;
  const files: string[] = [];
  let state = 12345;
  for (let i = 0; i < count; i++) {
    const pixels = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        for (let c = 0; c < 3; c++) {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0;
          const wave = 127 + 100 * Math.sin((x * (c + 1)) / 37 + (y * (i + 2)) / 53 + c);
          pixels[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, wave + ((state >>> 24) - 128) / 4));
        }
    const file = path.join(dir, `image-${String(i).padStart(4, '0')}.jpg`);
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(file);
    files.push(file);
  }
  return files;
}

export interface Timing {
  images: number;
  /** Seconds of the whole extraction, of the backbone within it (null: no model ran), and of the rest. */
  total: number | null;
  model: number | null;
  rest: number;
}

/** The best (highest) throughput of each measure over the rounds. */
function bestOf(rounds: Timing[]): { total: number | null; model: number | null; rest: number } {
  const best = (seconds: (t: Timing) => number | null) => {
    const rates = rounds.flatMap((t) => {
      const s = seconds(t);
      return s === null ? [] : [t.images / s];
    });
    return rates.length ? Math.max(...rates) : null;
  };
  return { total: best((t) => t.total), model: best((t) => t.model), rest: best((t) => t.rest)! };
}

/** A one-class dataset of `files` (all in `root`) and a fresh store under `root` for one timed extraction. */
async function extractionTarget(files: string[], root: string, name: string) {
  const dataset: DatasetManifest = {
    name: 'bench-extract',
    root,
    classes: ['a'],
    items: files.map((file) => ({ path: path.basename(file), label: 0, split: 'train' })),
  };
  // A fresh store each round, or the next round would find the features cached.
  const store = new LocalArtifactStore(await mkdtemp(path.join(root, `store-${name}-`)));
  return { dataset, store, split: 'train' as const };
}

/**
 * Wall time of a full extraction (decode + preprocess + backbone), its features stored as `dtype`, and of
 * the backbone calls within it.
 */
export async function timeExtraction(
  backbone: Backbone,
  files: string[],
  root: string,
  batchSize: number,
  dtype: FeatureDtype = 'float32',
): Promise<Timing> {
  let model = 0;
  let lastEnd = 0;
  // Extraction hands the backbone its next batch before the current one is out, so calls overlap; the
  // backbone runs them in turn, and a call is busy from its start or the previous call's end.
  const time =
    <Input>(run: (images: Input, n: number) => Promise<Float32Array>) =>
    async (images: Input, n: number) => {
      const start = performance.now();
      const out = await run(images, n);
      const end = performance.now();
      model += (end - Math.max(start, lastEnd)) / 1000;
      lastEnd = end;
      return out;
    };
  // Both entry points: a backbone that takes pixels is only called through extractPixels.
  const timed: Backbone = {
    ...backbone,
    extract: time((images, n) => backbone.extract(images, n)),
    ...(backbone.extractPixels
      ? { extractPixels: time((pixels: Uint8Array, n) => backbone.extractPixels!(pixels, n)) }
      : {}),
  };
  const target = await extractionTarget(files, root, backbone.name);
  const start = performance.now();
  await extractFeatures({ ...target, backbone: timed, batchSize, dtype });
  const total = (performance.now() - start) / 1000;
  await rm(target.store.root, { recursive: true, force: true });
  return { images: files.length, total, model, rest: total - model };
}

/** Seconds of a full extraction by `processes` processes (extractFeaturesInProcesses), their start included. */
export async function timeProcessExtraction(
  backbone: BackboneSpec,
  files: string[],
  root: string,
  processes: number,
): Promise<number> {
  const target = await extractionTarget(files, root, backbone.name);
  const start = performance.now();
  await extractFeaturesInProcesses({ ...target, storeUrl: target.store.root, backbone, processes });
  const seconds = (performance.now() - start) / 1000;
  await rm(target.store.root, { recursive: true, force: true });
  return seconds;
}

/** A preset as the reference script takes it (plain arrays). */
const presetJson = (p: PreprocessPreset) => ({ ...p, mean: [...p.mean], std: [...p.std] });

/** reference/extract_reference.py's reply to `request` (JSON on its stdin), with its package versions as one line. */
function runExtractReference<Reply>(python: string, request: object): Reply & { versions: string } {
  const reply = JSON.parse(
    execFileSync(python, [path.join(repoRoot(), 'reference', 'extract_reference.py')], {
      input: JSON.stringify(request),
      encoding: 'utf8',
    }),
  ) as Reply & { versions: Record<string, string> };
  const versions = Object.entries(reply.versions)
    .map(([name, version]) => `${name} ${version}`)
    .join(', ');
  return { ...reply, versions };
}

/**
 * ResNet-50's feature maps (7x7x2048) at no cost, taking the resnet50 preset's crops in batches of 64 as
 * a GPU provider does: an extraction with it runs at the rate its host side decodes, preprocesses, checks,
 * encodes, hashes and stores, which no backbone on a GPU can be fed beyond. Its maps are half zeros, as
 * after a ReLU, and the same values every batch (extraction never writes to a batch's features).
 */
export function instantResNet50Maps(): Backbone {
  const featureShape = { height: 7, width: 7, channels: 2048 };
  const size = featureShape.height * featureShape.width * featureShape.channels;
  const batchSize = 64;
  const maps = Float32Array.from({ length: batchSize * size }, (_, i) => (i % 2 ? 0 : (i % 97) / 7));
  const extract = async (_images: Float32Array | Uint8Array, n: number) => maps.subarray(0, n * size);
  return {
    name: 'instant-resnet50-maps',
    fingerprint: 'instant-resnet50-maps',
    inputSize: 224,
    featureShape,
    preprocessing: { resize: 256, crop: 224, scale: 'imagenet' },
    preset: 'resnet50',
    batchSize,
    runtime: { name: 'instant maps (bench)', hardware: cpuDescription() },
    extract,
    extractPixels: extract,
    dispose: () => undefined,
  };
}

/**
 * The host side's ceiling (instantResNet50Maps), storing float32 and float16, next to a PyTorch
 * DataLoader with a worker per core (as extraction decodes on every core) delivering the same files
 * (reference/extract_reference.py, task 'loader'); each side's best of `rounds`.
 */
async function hostSideRows(
  files: string[],
  root: string,
  rounds: number,
  python: string,
): Promise<Omit<BenchRow, 'ratio' | 'machine'>[]> {
  const backbone = instantResNet50Maps();
  const rates: Record<FeatureDtype, number> = { float32: 0, float16: 0 };
  for (let round = 0; round < rounds; round++)
    for (const dtype of ['float32', 'float16'] as const) {
      const timing = await timeExtraction(backbone, files, root, backbone.batchSize!, dtype);
      rates[dtype] = Math.max(rates[dtype], timing.images / timing.total!);
    }
  const reference = runExtractReference<{ engine: string; images_per_second: number }>(python, {
    task: 'loader',
    files,
    preset: presetJson(PRESETS.resnet50),
    batch: backbone.batchSize,
    workers: os.availableParallelism(),
    rounds,
  });
  return (['float32', 'float16'] as const).map((dtype) => ({
    case: `extract host side, ${files.length} images of 500x375, preset resnet50, 7x7x2048 maps stored as ${dtype}`,
    metric: 'throughput with an instant backbone (decode, preprocess, check, encode, hash, store)',
    unit: 'images/s',
    value: rates[dtype],
    reference: `${reference.engine}, batches of the same files, no backbone (reference/extract_reference.py task 'loader'; best of ${rounds}, ${reference.versions})`,
    reference_value: reference.images_per_second,
    backend: `${plural(DEFAULT_PREPROCESS_THREADS, 'preprocessing thread')}, decoding in libuv's pool, batches of ${backbone.batchSize}, shards of 256 in a local store`,
  }));
}

/** A loaded backbone, warmed up with one batch as the reference is. */
async function warm<T extends Backbone>(backbone: T, batchSize: number): Promise<T> {
  const pixels = backbone.inputSize * backbone.inputSize * 3;
  await backbone.extract(new Float32Array(batchSize * pixels), batchSize);
  return backbone;
}

/** The preset in the export sidecar (<model>.json from infra/export_backbones.py), else ResNet-50's. */
function presetOf(file: string): PresetName {
  const sidecar = file.replace(/\.onnx$/, '.json');
  if (existsSync(sidecar)) {
    const preset = (JSON.parse(readFileSync(sidecar, 'utf8')) as { preset?: string }).preset;
    if (preset && preset in PRESETS) return preset as PresetName;
  }
  return 'resnet50';
}

/**
 * Images/s of feature extraction on the CPU, decode + preprocess + backbone as extractFeatures runs it:
 * MobileNetV2 (nsfwjs, converted to ONNX) and an ONNX model (onnxruntime-node CPU), each next to
 * reference/extract_reference.py on the same files in the same run (Pillow + NumPy preprocessing, then
 * PyTorch, or onnxruntime's Python package on the same file, whichever is importable), in alternating
 * rounds of which each side keeps its best.
 */
export async function benchExtract(options: BenchExtractOptions = {}): Promise<BenchRow[]> {
  const count = options.images ?? 64;
  const mobilenetCount = Math.min(count, options.mobilenetImages ?? count);
  const batchSize = options.batchSize ?? 16;
  const threads = options.threads ?? os.cpus().length;
  const rounds = options.rounds ?? 3;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-extract-'));
  try {
    const files = await writeImages(dir, count);
    const resnetFile = options.onnxFile ?? process.env['INFODISENT_ONNX_RESNET50'];
    let onnxFile: string;
    let onnxLabel: string;
    if (resnetFile) {
      onnxFile = path.resolve(resnetFile);
      onnxLabel = `ONNX ${path.basename(onnxFile)}`;
    } else {
      // Five stride-2 3x3 convolutions 224 -> 7x7x512, 0.48 GFLOP per image (ResNet-50: 4.1 GMAC = 8.2 GFLOP).
      const { model } = convStackModel({
        side: 224,
        stages: [32, 64, 128, 256, 512].map((channels) => ({ channels, stride: 2 })),
        seed: 1,
        output: 'nchw',
      });
      onnxFile = path.join(dir, 'conv-stack.onnx');
      await writeFile(onnxFile, model);
      onnxLabel = 'ONNX generated conv stack (5 stride-2 3x3 convs, 7x7x512, 0.48 GFLOP/image)';
    }
    const preset = presetOf(onnxFile);

    const mobilenet = await warm(await loadNsfwjsMobileNetV2({ intraOpNumThreads: threads }), batchSize);
    const onnx = await warm(
      await loadOnnxBackbone({ file: onnxFile, preset, provider: 'cpu', intraOpNumThreads: threads }),
      batchSize,
    );

    // INFODISENT_TORCH_PYTHON: a Python with PyTorch (or onnxruntime) when the project's .venv has neither.
    const python = process.env['INFODISENT_TORCH_PYTHON'] ?? referencePython();
    const request = {
      files,
      batch: batchSize,
      threads,
      cases: [
        {
          name: 'mobilenet',
          images: mobilenetCount,
          preset: presetJson(PRESETS.mobilenet_v2_tfjs),
          torchvision: 'mobilenet_v2',
          onnx: null,
        },
        {
          name: 'onnx',
          preset: presetJson(PRESETS[preset]),
          torchvision: resnetFile ? 'resnet50' : null,
          onnx: onnxFile,
        },
      ],
    };
    const runReference = () => runExtractReference<{ cases: ReferenceCase[] }>(python, request);

    const timings: { mobilenet: Timing[]; onnx: Timing[]; reference: Timing[][] } = {
      mobilenet: [],
      onnx: [],
      reference: [[], []],
    };
    let reference: ReturnType<typeof runReference> | undefined;
    for (let round = 0; round < rounds; round++) {
      timings.mobilenet.push(await timeExtraction(mobilenet, files.slice(0, mobilenetCount), dir, batchSize));
      timings.onnx.push(await timeExtraction(onnx, files, dir, batchSize));
      reference = runReference();
      reference.cases.forEach((ref, i) => {
        timings.reference[i]!.push({
          images: ref.images,
          total: ref.model_seconds === null ? null : ref.preprocess_seconds + ref.model_seconds,
          model: ref.model_seconds,
          rest: ref.preprocess_seconds,
        });
      });
    }
    mobilenet.dispose();
    onnx.dispose();
    const hostDir = path.join(dir, 'host');
    await mkdir(hostDir);
    const hostFiles = await writeImages(hostDir, options.hostImages ?? 512);
    const hostRows = await hostSideRows(hostFiles, hostDir, rounds, python);

    const machine = `${machineDescription()}, load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join('/')} (1/5/15 min) at end, node ${process.version}`;
    const { versions } = reference!;
    const rows: BenchRow[] = [];
    const add = (row: Omit<BenchRow, 'ratio' | 'machine'>) =>
      rows.push({
        ...row,
        ratio: row.reference_value ? row.value / row.reference_value : null,
        machine,
      });
    const cases = [
      {
        label: 'MobileNetV2 nsfwjs 224px 7x7x1280',
        backend: `onnxruntime-node cpu, ${threads} threads (nsfwjs' tfjs model converted to ONNX)`,
        preprocessing: 'sharp decode + sharp resize to 224x224, overlapped with the backbone',
        node: bestOf(timings.mobilenet),
        ref: bestOf(timings.reference[0]!),
        reason: reference!.cases[0]!.reason,
      },
      {
        label: `${onnxLabel} preset ${preset}`,
        backend: `onnxruntime-node ${onnx.provider}, ${threads} threads`,
        preprocessing:
          'sharp decode + core/data/resample.ts (Pillow-exact resize, WebAssembly SIMD) in a worker thread, overlapped with the backbone',
        node: bestOf(timings.onnx),
        ref: bestOf(timings.reference[1]!),
        reason: reference!.cases[1]!.reason,
      },
    ];
    const best = `best of ${rounds} alternating rounds each`;
    for (const { label, backend, preprocessing, node, ref, reason } of cases) {
      const engine = `reference/extract_reference.py, same files and machine: Pillow + NumPy preprocessing, ${reason}; ${best} (${versions})`;
      const noModel = `none: ${reason} (reference/extract_reference.py, ${versions})`;
      const against = ref.model === null ? noModel : engine;
      add({
        case: `extract ${label}`,
        metric: 'throughput decode+preprocess+backbone',
        unit: 'images/s',
        value: node.total!,
        reference: against,
        reference_value: ref.total,
        backend,
      });
      add({
        case: `extract ${label}`,
        metric: 'throughput backbone only',
        unit: 'images/s',
        value: node.model!,
        reference: against,
        reference_value: ref.model,
        backend,
      });
      add({
        case: `extract ${label}`,
        metric:
          'throughput of the rest (extraction less backbone time: unhidden decode+preprocess, shard writes)',
        unit: 'images/s',
        value: node.rest,
        reference: `Pillow decode + resize/crop + NumPy normalise, one thread, not overlapped (reference/extract_reference.py; ${best}, ${versions})`,
        reference_value: ref.rest,
        backend: preprocessing,
      });
    }
    for (const row of hostRows) add(row);
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
