import * as tf from '@tensorflow/tfjs';
import { matMul, tileFor } from '../core/method/matmul';
import { type BackendChoice, selectBackend, TILED_MATMUL_FLAG } from '../core/tf/backend';
import { machineDescription } from '../core/util/machine';
import { SeededRandom } from '../core/util/random';
import { gaussian } from '../test/support/numeric';
import { runPythonReference } from '../test/support/python';
import type { BenchRow } from './rows';

export interface BenchMatMulOptions {
  backend?: BackendChoice;
  channels?: number[];
  /** Images a batch: the forward and gradient products span their 7x7 pixels. */
  batch?: number;
  reps?: number;
}

/**
 * The webgpu step's two kinds of large product at C channels: the fold's (S^2, E B; its Horner steps are the
 * tiled kernel whatever the flag) and the forward Z = X U^T. The rotation gradient is no product since
 * session 9 (a sparse kernel).
 */
function productCases(channels: number, pixels: number) {
  return [
    { name: 'fold product S Q', m: channels, k: channels, n: channels, transposeB: false },
    { name: 'forward X U^T (B transposed)', m: pixels, k: channels, n: channels, transposeB: true },
  ];
}

/** Milliseconds per product, `reps` products back to back and one read-back, after one untimed product. */
async function productMs(a: tf.Tensor2D, b: tf.Tensor2D, transposeB: boolean, reps: number): Promise<number> {
  const warm = matMul(a, b, false, transposeB);
  await warm.data();
  warm.dispose();
  const start = performance.now();
  const products: tf.Tensor[] = [];
  for (let i = 0; i < reps; i++) products.push(matMul(a, b, false, transposeB));
  await products.at(-1)!.data();
  const ms = (performance.now() - start) / reps;
  tf.dispose(products);
  return ms;
}

/**
 * The InfoDisent step's large matrix products on the chosen backend, through tf.matMul and (on webgpu)
 * the register-tiled kernel, next to torch.mm on the same machine (CUDA with webgpu) in the same run.
 */
export async function benchMatMul(options: BenchMatMulOptions = {}): Promise<BenchRow[]> {
  const backend = await selectBackend(options.backend ?? 'auto');
  const channels = options.channels ?? [512, 1024, 2048];
  const pixels = (options.batch ?? 64) * 49;
  const reps = options.reps ?? 10;
  const device = backend === 'webgpu' ? 'cuda' : 'cpu';
  const cases = channels.flatMap((c) => productCases(c, pixels));
  let torch: { ms: number; torch: string }[] | null = null;
  let problem = '';
  try {
    torch = runPythonReference('bench_matmul_torch.py', {
      cases: cases.map(({ m, k, n, transposeB }) => ({ m, k, n, transpose_b: transposeB })),
      reps,
      device,
    });
  } catch (error) {
    problem = `PyTorch reference unavailable: ${(error as Error).message.split('\n')[0]}`;
  }
  const kernels = backend === 'webgpu' ? [false, true] : [false];
  const machine = machineDescription();
  const rows: BenchRow[] = [];
  const random = new SeededRandom(3);
  for (const [index, { name, m, k, n, transposeB }] of cases.entries()) {
    const a = tf.tensor2d(gaussian(random, m * k), [m, k]);
    const b = tf.tensor2d(gaussian(random, k * n), transposeB ? [n, k] : [k, n]);
    const reference = torch?.[index];
    for (const tiled of kernels) {
      tf.env().set(TILED_MATMUL_FLAG, tiled);
      const ms = await productMs(a, b, transposeB, reps);
      const tile = tileFor(m, n);
      const kernel = !tiled
        ? 'tf.matMul'
        : tile
          ? `tiled kernel, ${tile.side}x${tile.side} tiles`
          : 'tiled flag on: too few tiles, tf.matMul';
      rows.push({
        case: `${name}: ${m}x${k}x${n}, ${kernel} (${((2 * m * k * n) / ms / 1e6).toFixed(0)} GFLOP/s)`,
        metric: 'time per product',
        unit: 'ms',
        value: ms,
        reference: reference ? `PyTorch ${reference.torch} ${device} float32 (TF32 off)` : problem,
        reference_value: reference?.ms ?? null,
        ratio: reference ? ms / reference.ms : null,
        backend,
        machine,
      });
    }
    tf.env().set(TILED_MATMUL_FLAG, false);
    tf.dispose([a, b]);
  }
  return rows;
}
