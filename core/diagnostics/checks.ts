import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import type { Backbone } from '../backbones/backbone';
import { loadNsfwjsMobileNetV2 } from '../backbones/nsfwjs-mobilenet';
import { cudaInstalled, type OnnxProvider } from '../backbones/onnx-backbone';
import { PreprocessPool } from '../data/preprocess-pool';
import { DEFAULT_PREPROCESS_THREADS } from '../features/feature-store';
import { expmSkewValue, planExpmValue, skewNorm, skewPart } from '../method/expm';
import { matMul } from '../method/matmul';
import type { ArtifactStore } from '../store/artifact-store';
import { type BackendChoice, selectBackend, webgpuAdapterStatus } from '../tf/backend';
import { findWebgpuAdapter, type WebgpuAdapterStatus } from '../tf/webgpu-adapter';
import { nvidiaGpuNames } from '../util/machine';
import { plural } from '../util/plural';
import { SeededRandom } from '../util/random';

/**
 * What `infodisent doctor` checks on a machine before it is given work: each check runs the real
 * component (a backend's product, the bundled backbone on each provider, a store round trip) and says
 * what it found. `skip`: the check does not apply here.
 */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  name: string;
  status: CheckStatus;
  summary: string;
}

const STATUS_WIDTH = 5;
const NAME_WIDTH = 12;

/** One check as the doctor prints it: status, name, summary, in columns. */
export function checkLine(check: Check): string {
  return `${check.status.padEnd(STATUS_WIDTH)} ${check.name.padEnd(NAME_WIDTH)} ${check.summary}`;
}

/** Largest |x - reference| over largest |reference|. */
export function relativeDifference(values: ArrayLike<number>, reference: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < reference.length; i++) {
    worst = Math.max(worst, Math.abs(values[i]! - reference[i]!));
    scale = Math.max(scale, Math.abs(reference[i]!));
  }
  return scale === 0 ? worst : worst / scale;
}

function normals(random: SeededRandom, count: number): Float64Array {
  return Float64Array.from({ length: count }, () => random.normal());
}

function elapsedMs(start: number): number {
  return performance.now() - start;
}

const GIB = 1024 ** 3;

export function checkMachine(): Check {
  const cpus = os.cpus();
  const pool = process.env.UV_THREADPOOL_SIZE ?? '4 (libuv default)';
  return {
    name: 'machine',
    status: 'ok',
    summary:
      `Node ${process.version}, ${process.platform} ${process.arch}, ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown'}), ` +
      `${(os.totalmem() / GIB).toFixed(1)} GiB memory (${(os.freemem() / GIB).toFixed(1)} free), libuv pool ${pool}`,
  };
}

/** Tolerances of the backend probe: float32 products and a float32 expm of a 512-channel rotation. */
export const PRODUCT_TOLERANCE = 1e-5;
export const ORTHOGONALITY_TOLERANCE = 1e-4;
const ROTATION_CHANNELS = 512;

/** A 96x160 by 160x128 product through the head's own matMul, against float64 in plain JS. */
async function productDifference(random: SeededRandom): Promise<number> {
  const [m, k, n] = [96, 160, 128];
  const a = normals(random, m * k);
  const b = normals(random, k * n);
  const reference = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      for (let j = 0; j < n; j++) reference[i * n + j]! += aip * b[p * n + j]!;
    }
  const product = tf.tidy(() =>
    matMul(tf.tensor2d(Float32Array.from(a), [m, k]), tf.tensor2d(Float32Array.from(b), [k, n])),
  );
  const values = await product.data();
  product.dispose();
  return relativeDifference(values, reference);
}

/** The head's rotation U = expm(A - A^T) at 512 channels, ||A|| ~ 4: max |U^T U - I| and the time of one. */
async function rotationProbe(random: SeededRandom): Promise<{ orthogonality: number; ms: number }> {
  const c = ROTATION_CHANNELS;
  const a = tf.tensor2d(
    Float32Array.from(normals(random, c * c), (x) => (x * 4) / Math.sqrt(c)),
    [c, c],
  );
  const rotate = async () => {
    const s = skewPart(a);
    const { bound, square } = await skewNorm(s);
    const u = expmSkewValue(s, planExpmValue(bound, square !== undefined), square);
    tf.dispose([s, square]);
    return u;
  };
  tf.dispose(await rotate()); // compiles the backend's kernels
  const start = performance.now();
  const u = await rotate();
  const gram = tf.tidy(() => tf.abs(tf.sub(matMul(u, u, true, false), tf.eye(c))).max());
  const [orthogonality] = await gram.data();
  const ms = elapsedMs(start);
  tf.dispose([a, u, gram]);
  return { orthogonality: orthogonality!, ms };
}

/**
 * What Dawn found for webgpu. `gpus` are the GPUs nvidia-smi lists: where there are several, every process on
 * the machine gets the first adapter Dawn enumerates (it cannot pick among identical GPUs, and Vulkan ignores
 * CUDA_VISIBLE_DEVICES), so GPU workers started side by side would all share one card.
 */
export function adapterCheck(
  status: WebgpuAdapterStatus,
  backend: string,
  gpus: readonly string[] = nvidiaGpuNames(),
): Check {
  if (!status.found)
    return { name: 'webgpu', status: 'warn', summary: `no GPU for training: ${status.reason}` };
  if (status.software)
    return {
      name: 'webgpu',
      status: 'warn',
      summary:
        `only a software adapter (${status.description}): auto passes it over` +
        (backend === 'webgpu' ? ', --backend webgpu forced it' : '; --backend webgpu forces it'),
    };
  if (gpus.length > 1)
    return {
      name: 'webgpu',
      status: 'warn',
      summary:
        `adapter ${status.description}, the first of this machine's ${gpus.length} GPUs, for every process: Dawn ` +
        'cannot pick another and Vulkan ignores CUDA_VISIBLE_DEVICES; run each GPU worker in a container given ' +
        'one GPU (infra/deploy/README.md) or they all share one',
    };
  return { name: 'webgpu', status: 'ok', summary: `adapter ${status.description}` };
}

/**
 * The tfjs backend the heads would train on (`choice`, as a worker's --backend), checked by a product
 * against float64 and the orthogonality of a 512-channel rotation, with what Dawn found for webgpu.
 */
export async function checkTfjs(choice: BackendChoice): Promise<Check[]> {
  // What selecting the backend found, or (where it never tried webgpu) what Dawn finds.
  const foundAdapter = async () => webgpuAdapterStatus() ?? (await findWebgpuAdapter()).status;
  let backend: string;
  try {
    backend = await selectBackend(choice);
  } catch (error) {
    return [
      { name: 'tfjs', status: 'fail', summary: (error as Error).message },
      adapterCheck(await foundAdapter(), choice),
    ];
  }
  const adapter = await foundAdapter();
  const random = new SeededRandom(7);
  const product = await productDifference(random);
  const { orthogonality, ms } = await rotationProbe(random);
  const wrong = [
    ...(product > PRODUCT_TOLERANCE ? [`a product is off by ${product.toExponential(1)} of float64`] : []),
    ...(orthogonality > ORTHOGONALITY_TOLERANCE
      ? [`a rotation is off orthogonal by ${orthogonality.toExponential(1)}`]
      : []),
  ];
  const how = choice === 'auto' ? 'auto' : 'forced';
  return [
    {
      name: 'tfjs',
      status: wrong.length > 0 ? 'fail' : 'ok',
      summary:
        wrong.length > 0
          ? `${backend} (${how}): ${wrong.join('; ')}`
          : `${backend} (${how}): product within ${product.toExponential(1)} of float64; ` +
            `${ROTATION_CHANNELS}-channel rotation orthogonal to ${orthogonality.toExponential(1)}, ${ms.toFixed(0)} ms`,
    },
    adapterCheck(adapter, backend),
  ];
}

const PROBE_IMAGES = 2;

/** Two fixed images through a backbone: their features and the time of a second (warm) run per image. */
async function extractProbe(backbone: Backbone): Promise<{ features: Float32Array; msPerImage: number }> {
  const random = new SeededRandom(11);
  const side = backbone.inputSize;
  const images = Float32Array.from({ length: PROBE_IMAGES * side * side * 3 }, () => random.next());
  await backbone.extract(images, PROBE_IMAGES);
  const start = performance.now();
  const features = await backbone.extract(images, PROBE_IMAGES);
  return { features, msPerImage: elapsedMs(start) / PROBE_IMAGES };
}

/** Relative difference a GPU provider's features may have from the CPU's (float32, other kernels). */
export const PROVIDER_TOLERANCE = 1e-3;

/**
 * The bundled MobileNetV2 through each of onnxruntime's execution providers (CPU, WebGPU, and CUDA where
 * its library is installed), the GPU ones compared with the CPU's features; and which `auto` would use
 * for an ONNX backbone.
 */
export async function checkOnnxProviders(): Promise<Check[]> {
  const checks: Check[] = [];
  let cpuFeatures: Float32Array | undefined;
  const working: OnnxProvider[] = [];
  const providers: OnnxProvider[] = ['cpu', 'webgpu', ...(cudaInstalled() ? (['cuda'] as const) : [])];
  const adapter = (await findWebgpuAdapter()).status;
  for (const provider of providers) {
    const name = `onnx ${provider}`;
    if (provider === 'webgpu' && !adapter.found) {
      checks.push({ name, status: 'skip', summary: adapter.reason });
      continue;
    }
    let backbone: Backbone | undefined;
    try {
      backbone = await loadNsfwjsMobileNetV2({ provider });
      const { features, msPerImage } = await extractProbe(backbone);
      const timing = `bundled MobileNetV2, ${msPerImage.toFixed(1)} ms/image`;
      if (provider === 'cpu') {
        cpuFeatures = features;
        checks.push({ name, status: 'ok', summary: timing });
        continue;
      }
      const difference = cpuFeatures ? relativeDifference(features, cpuFeatures) : Number.NaN;
      const agrees = difference <= PROVIDER_TOLERANCE;
      const software = provider === 'webgpu' && adapter.found && adapter.software;
      checks.push({
        name,
        status: agrees && !software ? 'ok' : 'warn',
        summary:
          timing +
          (cpuFeatures
            ? `; features within ${difference.toExponential(1)} of the CPU's` +
              (agrees ? '' : ` (more than ${PROVIDER_TOLERANCE})`)
            : '; not compared, the CPU provider failed') +
          (software ? `; a software adapter (${adapter.description}), which auto passes over` : ''),
      });
      if (agrees && !software) working.push(provider);
    } catch (error) {
      checks.push({
        name,
        status: provider === 'cpu' ? 'fail' : 'warn',
        summary: (error as Error).message.split('\n')[0]!,
      });
    } finally {
      backbone?.dispose();
    }
  }
  if (!cudaInstalled())
    checks.push({
      name: 'onnx cuda',
      status: 'skip',
      summary:
        "onnxruntime-node's CUDA provider library is not installed (with CUDA 12, cuDNN 9 and a network: " +
        'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js)',
    });
  const auto = (['cuda', 'webgpu'] as const).find((p) => working.includes(p)) ?? 'cpu';
  checks.push({
    name: 'extraction',
    status: cpuFeatures ? 'ok' : 'fail',
    summary: `ONNX backbones with provider 'auto' extract on ${auto}`,
  });
  return checks;
}

/** Generated 500x375 JPEGs (the typical size in CUB and ImageNet) the image check prepares: a batch of 32. */
const PREPARATION_FILES = 32;

/**
 * Images decoded and prepared as extraction prepares them (PreprocessPool on extraction's default threads,
 * ResNet-50's crops as bytes, two batches at a time as extraction keeps two ahead): the most images a
 * second this machine can feed any backbone, a GPU's included. Fails when the preparation does (sharp's
 * decoder, the resize's WebAssembly).
 */
export async function checkImagePreparation(): Promise<Check[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-doctor-'));
  const pool = PreprocessPool.start(DEFAULT_PREPROCESS_THREADS);
  try {
    const files = await Promise.all(
      Array.from({ length: PREPARATION_FILES }, async (_, i) => {
        const file = path.join(dir, `photo-${i}.jpg`);
        const noise = { type: 'gaussian' as const, mean: 128, sigma: 24 + i };
        await sharp({ create: { width: 500, height: 375, channels: 3, background: '#000', noise } })
          .jpeg({ quality: 90 })
          .toFile(file);
        return file;
      }),
    );
    const twoBatches = () => Promise.all([0, 1].map(() => pool.preparePixels(files, 'resnet50')));
    await twoBatches();
    const start = performance.now();
    await twoBatches();
    const rate = (2 * files.length) / (elapsedMs(start) / 1000);
    return [
      {
        name: 'images',
        status: 'ok',
        summary: `${rate.toFixed(0)} images/s decoded and cropped for ResNet-50 (${plural(DEFAULT_PREPROCESS_THREADS, 'thread')}): the most this machine can feed a backbone`,
      },
    ];
  } catch (error) {
    return [{ name: 'images', status: 'fail', summary: (error as Error).message.split('\n')[0]! }];
  } finally {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** A round trip through the store: write, read back, list, delete, each step named when it fails. */
export async function checkStore(store: ArtifactStore): Promise<Check> {
  const prefix = `.infodisent-doctor/${os.hostname().replace(/[^A-Za-z0-9._-]/g, '_')}-${process.pid}`;
  const key = `${prefix}/probe.bin`;
  const data = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 31 + 7) % 251);
  const start = performance.now();
  const steps: [string, () => Promise<void>][] = [
    ['write', () => store.put(key, data)],
    [
      'read',
      async () => {
        const back = await store.get(key);
        if (!back || Buffer.compare(back, data) !== 0) throw new Error('read back other bytes than written');
      },
    ],
    [
      'list',
      async () => {
        if (!(await store.list(prefix)).includes(key)) throw new Error(`${key} is missing from the listing`);
      },
    ],
    [
      'delete',
      async () => {
        await store.delete(key);
        if (await store.exists(key)) throw new Error(`${key} still exists after its deletion`);
      },
    ],
  ];
  for (const [step, run] of steps) {
    try {
      await run();
    } catch (error) {
      return {
        name: 'store',
        status: 'fail',
        summary: `${store.location}: ${step} failed: ${(error as Error).message}`,
      };
    }
  }
  return {
    name: 'store',
    status: 'ok',
    summary: `${store.location}: write, read, list and delete of 64 KiB in ${elapsedMs(start).toFixed(0)} ms`,
  };
}
