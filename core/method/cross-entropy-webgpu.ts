import * as tf from '@tensorflow/tfjs';
import { int32, PerOutputProgram, ReductionProgram, runProgram } from './webgpu-program';

/** WGSL: the max and the sum of exp(l - max) of sample `b`'s logits L[0 .. K) (class-major, stride n). */
const LOG_PARTITION = `
  var high = L[b];
  for (var k = 1; k < uniforms.classes; k = k + 1) { high = max(high, L[k * uniforms.samples + b]); }
  var total = 0.0;
  for (var k = 0; k < uniforms.classes; k = k + 1) { total = total + exp(L[k * uniforms.samples + b] - high); }
`;

/**
 * The gradient of the mean softmax cross-entropy of class-major logits L [K, n] with labels Y [n]:
 * dL/dlogits [K, n] (softmax minus one-hot, over n). Each thread recomputes its sample's log-partition over
 * the K logits: a few hundred flops, against the ~15 dispatches of the op-by-op version.
 */
class CrossEntropyGradientProgram extends PerOutputProgram {
  variableNames = ['L', 'Y'];
  uniforms = 'classes : i32, samples : i32,';
  shaderKey = 'cross_entropy_gradient';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let b = index % uniforms.samples;
          let k = index / uniforms.samples;
          ${LOG_PARTITION}
          var label = 0.0;
          if (Y[b] == k) { label = 1.0; }
          setOutputAtIndex(index, (exp(L[index] - high) / total - label) / f32(uniforms.samples));
        }
      }
    `;
  }
}

/** The mean loss over the n samples, [1]: each sample's log-partition minus its label's logit. */
class CrossEntropyLossProgram extends ReductionProgram {
  variableNames = ['L', 'Y'];
  uniforms = 'classes : i32, samples : i32, terms : i32,';
  shaderKey = 'cross_entropy_mean_loss';

  protected termCode(): string {
    return `
      let b = i;
      ${LOG_PARTITION}
      term = high + log(total) - L[Y[b] * uniforms.samples + b];
    `;
  }

  protected resultCode(): string {
    return 'total / f32(uniforms.terms)';
  }
}

/** Mean softmax cross-entropy of logits [K, n] and its gradient, in two dispatches on webgpu. */
export function crossEntropyWebgpu(
  logitsT: tf.Tensor2D,
  labels: tf.Tensor1D,
): { loss: tf.Scalar; gradLogitsT: tf.Tensor2D } {
  const [classes, samples] = logitsT.shape;
  const shape = [classes, samples].map(int32);
  const loss = runProgram(new CrossEntropyLossProgram(), [logitsT, labels], [...shape, int32(samples)]);
  return {
    // A reshape is a view on webgpu: no dispatch.
    loss: tf.reshape(loss, []) as tf.Scalar,
    gradLogitsT: runProgram(
      new CrossEntropyGradientProgram([classes, samples]),
      [logitsT, labels],
      shape,
    ) as tf.Tensor2D,
  };
}
