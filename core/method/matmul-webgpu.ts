import type * as tf from '@tensorflow/tfjs';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { float32, int32, runProgram } from './webgpu-program';

/**
 * A register-tiled matrix product for the webgpu backend. tfjs' own (MatMulPackedProgram) gives each
 * workgroup of 64 threads a 32x32 tile with 4x4 values a thread; on an H200 it ran the head's
 * 2048 x 3136 x 2048 product at about 1.3 TFLOP/s (bench/NOTES.md), which bounds the step at C = 2048.
 * Here a workgroup of 16x16 threads computes a T x T tile (T = 128: 8x8 values a thread, T = 64: 4x4),
 * stages K-slices of A and B in workgroup memory as vec4 columns, and prefetches the next slice into
 * registers while it multiplies the current one. Either operand may be read transposed, so no transpose
 * is ever materialised. Each output is one thread's running sum over k in order: deterministic.
 */

/** Side of a workgroup's output tile and the K-slice staged per step (8 KiB of workgroup memory). */
export type MatMulTile = { side: 128; depth: 8 } | { side: 64; depth: 16 };

/**
 * What a square product does as it writes its output: scales it by `scale` (default 1) and adds identity I +
 * sum_i coefficients[i] terms[i], the terms of the output's shape. A Horner step of the expm's polynomial,
 * Q B + block, or a term of its reverse pass, is then one dispatch.
 */
export interface Epilogue {
  scale?: number;
  identity: number;
  terms: tf.Tensor2D[];
  coefficients: number[];
}

const THREADS_PER_SIDE = 16;
const MAX_EPILOGUE_TERMS = 5;
const THREADS = THREADS_PER_SIDE * THREADS_PER_SIDE;

class TiledMatMulProgram implements WebGPUProgram {
  variableNames = ['A', 'B'];
  uniforms = 'm : i32, n : i32, k : i32,';
  shaderKey: string;
  outputShape: number[];
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [THREADS_PER_SIDE, THREADS_PER_SIDE, 1];

  constructor(
    m: number,
    n: number,
    private readonly tile: MatMulTile,
    private readonly transposeA: boolean,
    private readonly transposeB: boolean,
    /** Terms the epilogue adds besides its identity; -1: no epilogue. */
    private readonly epilogueTerms = -1,
  ) {
    this.outputShape = [m, n];
    this.dispatch = [Math.ceil(n / tile.side), Math.ceil(m / tile.side), 1];
    this.shaderKey = `infodisent_tiled_matmul_${tile.side}_${tile.depth}_${transposeA}_${transposeB}_${epilogueTerms}`;
    if (epilogueTerms >= 0) {
      const terms = Array.from({ length: epilogueTerms }, (_, i) => i);
      this.variableNames = ['A', 'B', ...terms.map((i) => `T${i}`)];
      this.uniforms += ` scale : f32, identity : f32, ${terms.map((i) => `c${i} : f32,`).join(' ')}`;
    }
  }

  /** WGSL of the output at (row, col), flat index `at`, from the product's value `value`. */
  private epilogue(value: string): string {
    if (this.epilogueTerms < 0) return value;
    const terms = Array.from({ length: this.epilogueTerms }, (_, i) => ` + uniforms.c${i} * T${i}[at]`);
    return `${value} * uniforms.scale + select(0.0, uniforms.identity, row == col + c)${terms.join('')}`;
  }

  getUserCode(): string {
    const { side, depth } = this.tile;
    const perThread = side / THREADS_PER_SIDE; // values per thread along each side
    const groups = perThread / 4; // vec4 groups per thread along each side
    const loads = (side * depth) / THREADS; // values of each operand a thread stages per slice
    // A row of the staged slice holds side/4 vec4s plus one of padding, so that the threads storing one
    // k-row of a slice do not all hit the same memory bank.
    const stride = side / 4 + 1;
    // Element e of a slice: along the slice's contiguous direction in memory when the operand is stored
    // that way (coalesced reads), then placed at [k][row] in workgroup memory.
    const sliceA = this.transposeA
      ? { k: 'e / SIDE', row: 'e % SIDE', at: '(k0 + kk) * uniforms.m + r' }
      : { k: 'e % DEPTH', row: 'e / DEPTH', at: 'r * uniforms.k + k0 + kk' };
    const sliceB = this.transposeB
      ? { k: 'e % DEPTH', row: 'e / DEPTH', at: 'r * uniforms.k + k0 + kk' }
      : { k: 'e / SIDE', row: 'e % SIDE', at: '(k0 + kk) * uniforms.n + r' };
    const fetch = (name: 'A' | 'B', slice: typeof sliceA, origin: string, limit: string) =>
      Array.from(
        { length: loads },
        (_, j) => `{
          let e = i32(localIndex) + ${j * THREADS};
          let kk = ${slice.k};
          let r = ${origin} + ${slice.row};
          var v = 0.0;
          if (r < ${limit} && k0 + kk < uniforms.k) { v = ${name}[${slice.at}]; }
          ${name.toLowerCase()}Next[${j}] = v;
        }`,
      ).join('\n');
    const stage = (name: 'A' | 'B', slice: typeof sliceA) =>
      Array.from(
        { length: loads },
        (_, j) => `{
          let e = i32(localIndex) + ${j * THREADS};
          let kk = ${slice.k};
          let row = ${slice.row};
          ${name}s[kk * STRIDE + row / 4][row % 4] = ${name.toLowerCase()}Next[${j}];
        }`,
      ).join('\n');
    const accumulators = Array.from(
      { length: perThread * groups },
      (_, i) => `var acc${i} = vec4<f32>(0.0);`,
    );
    const multiply: string[] = [];
    for (let g = 0; g < groups; g++)
      multiply.push(`let a${g} = As[kk * STRIDE + ty + ${g * THREADS_PER_SIDE}];`);
    for (let g = 0; g < groups; g++)
      multiply.push(`let b${g} = Bs[kk * STRIDE + tx + ${g * THREADS_PER_SIDE}];`);
    for (let g = 0; g < groups; g++)
      for (let i = 0; i < 4; i++)
        for (let h = 0; h < groups; h++) {
          const acc = `acc${(g * 4 + i) * groups + h}`;
          multiply.push(`${acc} = fma(vec4<f32>(a${g}[${i}]), b${h}, ${acc});`);
        }
    const store: string[] = [];
    for (let g = 0; g < groups; g++)
      for (let i = 0; i < 4; i++)
        for (let h = 0; h < groups; h++) {
          const acc = `acc${(g * 4 + i) * groups + h}`;
          store.push(`{
            let row = m0 + 4 * (ty + ${g * THREADS_PER_SIDE}) + ${i};
            let col = n0 + 4 * (tx + ${h * THREADS_PER_SIDE});
            if (row < uniforms.m) {
              for (var c = 0; c < 4; c = c + 1) {
                let at = row * uniforms.n + col + c;
                if (col + c < uniforms.n) { setOutputAtIndex(at, ${this.epilogue(`${acc}[c]`)}); }
              }
            }
          }`);
        }
    return `
      const SIDE = ${side};
      const DEPTH = ${depth};
      const STRIDE = ${stride};
      var<workgroup> As : array<vec4<f32>, ${depth * stride}>;
      var<workgroup> Bs : array<vec4<f32>, ${depth * stride}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let m0 = i32(workgroupId.y) * SIDE;
        let n0 = i32(workgroupId.x) * SIDE;
        var aNext : array<f32, ${loads}>;
        var bNext : array<f32, ${loads}>;
        ${accumulators.join('\n')}
        var k0 = 0;
        ${fetch('A', sliceA, 'm0', 'uniforms.m')}
        ${fetch('B', sliceB, 'n0', 'uniforms.n')}
        let slices = (uniforms.k + DEPTH - 1) / DEPTH;
        for (var t = 0; t < slices; t = t + 1) {
          workgroupBarrier();
          ${stage('A', sliceA)}
          ${stage('B', sliceB)}
          workgroupBarrier();
          k0 = k0 + DEPTH;
          if (k0 < uniforms.k) {
            ${fetch('A', sliceA, 'm0', 'uniforms.m')}
            ${fetch('B', sliceB, 'n0', 'uniforms.n')}
          }
          for (var kk = 0; kk < DEPTH; kk = kk + 1) {
            ${multiply.join('\n')}
          }
        }
        ${store.join('\n')}
      }
    `;
  }
}

/**
 * op(A) op(B) on the webgpu backend, op transposing where asked: A is [m, k] (or [k, m] transposed),
 * B is [k, n] (or [n, k] transposed); plus the epilogue's sum where one is given.
 */
export function tiledMatMulWebgpu(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  transposeA: boolean,
  transposeB: boolean,
  tile: MatMulTile,
  epilogue?: Epilogue,
): tf.Tensor2D {
  const [m, k] = transposeA ? [a.shape[1], a.shape[0]] : a.shape;
  const [kB, n] = transposeB ? [b.shape[1], b.shape[0]] : b.shape;
  if (k !== kB) throw new Error(`matMul: inner dimensions ${k} and ${kB} differ`);
  // WebGPU guarantees 8 storage buffers a shader stage: A, B, the output and at most 5 terms.
  if ((epilogue?.terms.length ?? 0) > MAX_EPILOGUE_TERMS)
    throw new Error(
      `matMul: an epilogue takes at most ${MAX_EPILOGUE_TERMS} terms, not ${epilogue!.terms.length}`,
    );
  // One entry a uniform: tfjs aligns a three-value entry as a vec3, which the i32 fields would not match.
  const uniforms = [m, n, k].map(int32);
  const added = epilogue
    ? [epilogue.scale ?? 1, epilogue.identity, ...epilogue.coefficients].map(float32)
    : [];
  return runProgram(
    new TiledMatMulProgram(m, n, tile, transposeA, transposeB, epilogue?.terms.length),
    [a, b, ...(epilogue?.terms ?? [])],
    [...uniforms, ...added],
  ) as tf.Tensor2D;
}
