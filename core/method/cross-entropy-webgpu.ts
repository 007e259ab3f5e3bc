import * as tf from '@tensorflow/tfjs';
import { PerOutputProgram, runProgram } from './webgpu-program';

/** WGSL: the max and the sum of exp(l - max) of sample `b`'s logits L[0 .. K) (class-major, stride n). */
const LOG_PARTITION = `
  var high = L[b];
  for (var k = 1; k < uniforms.classes; k = k + 1) { high = max(high, L[k * uniforms.samples + b]); }
  var total = 0.0;
  for (var k = 0; k < uniforms.classes; k = k + 1) { total = total + exp(L[k * uniforms.samples + b] - high); }
`;

/**
 * One output of the softmax cross-entropy of class-major logits L [K, n] with labels Y [n]: the gradient
 * dL/dlogits [K, n] (softmax minus one-hot, over n) or each sample's loss [n]. Each thread recomputes its
 * sample's log-partition over the K logits: a few hundred flops, against the ~15 dispatches of the op-by-op
 * version.
 */
class CrossEntropyProgram extends PerOutputProgram {
  variableNames = ['L', 'Y'];
  uniforms = 'classes : i32, samples : i32,';
  shaderKey: string;

  constructor(
    classes: number,
    samples: number,
    private readonly output: 'gradient' | 'loss',
  ) {
    super(output === 'gradient' ? [classes, samples] : [samples]);
    this.shaderKey = `cross_entropy_${output}`;
  }

  getUserCode(): string {
    const body =
      this.output === 'gradient'
        ? `
          let b = index % uniforms.samples;
          let k = index / uniforms.samples;
          ${LOG_PARTITION}
          var label = 0.0;
          if (Y[b] == k) { label = 1.0; }
          setOutputAtIndex(index, (exp(L[index] - high) / total - label) / f32(uniforms.samples));`
        : `
          let b = index;
          ${LOG_PARTITION}
          setOutputAtIndex(index, high + log(total) - L[Y[b] * uniforms.samples + b]);`;
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {${body}
        }
      }
    `;
  }
}

/** Mean softmax cross-entropy of logits [K, n] and its gradient, in three dispatches on webgpu. */
export function crossEntropyWebgpu(
  logitsT: tf.Tensor2D,
  labels: tf.Tensor1D,
): { loss: tf.Scalar; gradLogitsT: tf.Tensor2D } {
  const [classes, samples] = logitsT.shape;
  const run = (output: 'gradient' | 'loss') =>
    runProgram(
      new CrossEntropyProgram(classes, samples, output),
      [logitsT, labels],
      [
        { type: 'int32', data: [classes] },
        { type: 'int32', data: [samples] },
      ],
    );
  const perSample = run('loss');
  const loss = tf.mean(perSample) as tf.Scalar;
  perSample.dispose();
  return { loss, gradLogitsT: run('gradient') as tf.Tensor2D };
}
