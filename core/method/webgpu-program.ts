import * as tf from '@tensorflow/tfjs';
// Types only: loading the package registers the webgpu backend, which backend.ts does when a GPU exists.
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

const WORKGROUP_SIZE = 64;

/**
 * A tfjs WebGPU program with one thread per output value (`main(index)`), as the head's fused kernels
 * (AdamW, sparse pooling, cross-entropy) are written: subclasses give their inputs, uniforms and code.
 */
export abstract class PerOutputProgram implements WebGPUProgram {
  abstract variableNames: string[];
  abstract uniforms: string;
  abstract shaderKey: string;
  workgroupSize: [number, number, number] = [WORKGROUP_SIZE, 1, 1];
  size = true;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];

  constructor(readonly outputShape: number[]) {
    this.dispatchLayout = { x: outputShape.map((_, i) => i) };
    this.dispatch = [Math.ceil(tf.util.sizeFromShape(outputShape) / WORKGROUP_SIZE), 1, 1];
  }

  abstract getUserCode(): string;
}

/** Runs `program` on the webgpu backend: a float32 tensor of its output shape. */
export function runProgram(
  program: WebGPUProgram,
  inputs: tf.Tensor[],
  uniforms: { type: 'float32' | 'int32'; data: number[] }[],
): tf.Tensor {
  const backend = tf.backend() as unknown as WebGPUBackend;
  return tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(program, inputs, 'float32', uniforms));
}
