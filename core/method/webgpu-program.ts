import * as tf from '@tensorflow/tfjs';
// Types only: loading the package registers the webgpu backend, which backend.ts does when a GPU exists.
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

const WORKGROUP_SIZE = 64;

/**
 * A tfjs WebGPU program with one thread per output value (`main(index)`), as the head's fused kernels
 * (AdamW, sparse pooling, cross-entropy) are written: subclasses give their inputs, uniforms and code.
 * `threads` (default: one per output value) is for kernels whose threads write several outputs each.
 */
export abstract class PerOutputProgram implements WebGPUProgram {
  abstract variableNames: string[];
  abstract uniforms: string;
  abstract shaderKey: string;
  workgroupSize: [number, number, number] = [WORKGROUP_SIZE, 1, 1];
  size = true;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];

  constructor(
    readonly outputShape: number[],
    threads = tf.util.sizeFromShape(outputShape),
  ) {
    this.dispatchLayout = { x: outputShape.map((_, i) => i) };
    this.dispatch = [Math.ceil(threads / WORKGROUP_SIZE), 1, 1];
  }

  abstract getUserCode(): string;
}

const REDUCTION_THREADS = 256;

/**
 * One workgroup summing `uniforms.terms` values into a single output, [1]: each thread adds up a strided
 * share in order, then the shares are added pairwise in workgroup memory. Subclasses declare `terms : i32`
 * among their uniforms and give the WGSL of term `i` (`termCode`, a block that assigns `term`) and of the
 * result from the total (`resultCode`, an expression of `total`).
 * One dispatch for a reduction tfjs runs as two or three (an elementwise op, the sum, a scale).
 */
export abstract class ReductionProgram implements WebGPUProgram {
  abstract variableNames: string[];
  abstract uniforms: string;
  abstract shaderKey: string;
  readonly outputShape = [1];
  workgroupSize: [number, number, number] = [REDUCTION_THREADS, 1, 1];
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number] = [1, 1, 1];

  protected abstract termCode(): string;
  protected abstract resultCode(): string;

  getUserCode(): string {
    return `
      var<workgroup> shares : array<f32, ${REDUCTION_THREADS}>;
      fn main(index : i32) {
        var share = 0.0;
        for (var i = index; i < uniforms.terms; i = i + ${REDUCTION_THREADS}) {
          var term = 0.0;
          {
            ${this.termCode()}
          }
          share = share + term;
        }
        shares[index] = share;
        workgroupBarrier();
        for (var width = ${REDUCTION_THREADS / 2}; width > 0; width = width / 2) {
          if (index < width) { shares[index] = shares[index] + shares[index + width]; }
          workgroupBarrier();
        }
        if (index == 0) {
          let total = shares[0];
          setOutputAtIndex(0, ${this.resultCode()});
        }
      }
    `;
  }
}

/** A program's uniform value: one entry each (tfjs aligns a multi-value entry as a vector). */
export type Uniform = { type: 'float32' | 'int32'; data: number[] };

export function int32(value: number): Uniform {
  return { type: 'int32', data: [value] };
}

export function float32(value: number): Uniform {
  return { type: 'float32', data: [value] };
}

/** Runs `program` on the webgpu backend: a float32 tensor of its output shape. */
export function runProgram(program: WebGPUProgram, inputs: tf.Tensor[], uniforms: Uniform[]): tf.Tensor {
  const backend = tf.backend() as unknown as WebGPUBackend;
  return tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(program, inputs, 'float32', uniforms));
}

/**
 * The number of webgpu dispatches `run` encodes (tfjs kernels and the project's own programs alike), counted
 * where every one of them passes: the backend's runWebGPUProgram. A step on webgpu is bound by this count.
 */
export async function countDispatches(run: () => Promise<void>): Promise<number> {
  const backend = tf.backend() as unknown as WebGPUBackend;
  const original = backend.runWebGPUProgram;
  let count = 0;
  backend.runWebGPUProgram = (...args: Parameters<WebGPUBackend['runWebGPUProgram']>) => {
    count += 1;
    return original.apply(backend, args);
  };
  try {
    await run();
  } finally {
    backend.runWebGPUProgram = original;
  }
  return count;
}
