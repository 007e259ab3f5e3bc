import * as tf from '@tensorflow/tfjs';
import { crossEntropyWebgpu } from './cross-entropy-webgpu';

/**
 * Mean softmax cross-entropy of class-major logits [K, n] and its gradient with respect to them.
 * Works on the transposed (small) [n, K] copy so that the softmax reduces over the innermost axis; on
 * webgpu, fused kernels (cross-entropy-webgpu.ts).
 */
export function crossEntropyClassMajor(
  logitsT: tf.Tensor2D,
  labels: Int32Array,
): { loss: tf.Scalar; gradLogitsT: tf.Tensor2D } {
  return tf.tidy(() => {
    const [classes, n] = logitsT.shape;
    for (const label of labels) {
      if (!(label >= 0 && label < classes))
        throw new Error(`label ${label} is outside the class range 0..${classes - 1}`);
    }
    if (tf.getBackend() === 'webgpu') return crossEntropyWebgpu(logitsT, tf.tensor1d(labels, 'int32'));
    const logits = tf.transpose(logitsT) as tf.Tensor2D;
    const logProbabilities = tf.logSoftmax(logits);
    const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), classes).toFloat();
    const loss = tf.neg(tf.sum(tf.mul(oneHot, logProbabilities))).div(n) as tf.Scalar;
    const gradLogits = tf.div(tf.sub(tf.exp(logProbabilities), oneHot), n);
    return { loss, gradLogitsT: tf.transpose(gradLogits) as tf.Tensor2D };
  });
}
