import type * as tf from '@tensorflow/tfjs';
import { float32, int32, PerOutputProgram, ReductionProgram, runProgram } from './webgpu-program';

/**
 * The expm's elementwise steps as single webgpu dispatches, where a step is bound by its number of
 * dispatches: X - X^T (a transpose and a subtraction op by op), the Paterson-Stockmeyer blocks
 * c_0 I + sum_i c_i T_i (a multiply and an add per term), and the sum of squares of the norm bound.
 */

/** S[i, j] = X[i, j] - X[j, i]: exactly what tf.sub(x, tf.transpose(x)) rounds to. */
class SkewPartProgram extends PerOutputProgram {
  variableNames = ['X'];
  uniforms = 'n : i32,';
  shaderKey = 'infodisent_skew_part';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let row = index / uniforms.n;
          let col = index - row * uniforms.n;
          setOutputAtIndex(index, X[index] - X[col * uniforms.n + row]);
        }
      }
    `;
  }
}

export function skewPartWebgpu(x: tf.Tensor2D): tf.Tensor2D {
  return runProgram(new SkewPartProgram(x.shape), [x], [int32(x.shape[0])]) as tf.Tensor2D;
}

/** identity I + sum_i coefficients_i T_i over square matrices T_i, one thread per entry. */
class LinearCombinationProgram extends PerOutputProgram {
  variableNames: string[];
  uniforms: string;
  shaderKey: string;

  constructor(shape: number[], terms: number) {
    super(shape);
    this.variableNames = Array.from({ length: terms }, (_, i) => `T${i}`);
    this.uniforms = `n : i32, identity : f32, ${this.variableNames.map((_, i) => `c${i} : f32,`).join(' ')}`;
    this.shaderKey = `infodisent_linear_combination_${terms}`;
  }

  getUserCode(): string {
    const sum = this.variableNames.map((name, i) => `uniforms.c${i} * ${name}[index]`).join(' + ');
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let row = index / uniforms.n;
          var value = ${sum};
          if (index == row * (uniforms.n + 1)) { value = value + uniforms.identity; }
          setOutputAtIndex(index, value);
        }
      }
    `;
  }
}

/** identity I + sum_i coefficients[i] terms[i] for square terms of one shape, in one dispatch. */
export function linearCombinationWebgpu(
  terms: tf.Tensor2D[],
  coefficients: number[],
  identity: number,
): tf.Tensor2D {
  const n = terms[0]!.shape[0];
  return runProgram(new LinearCombinationProgram([n, n], terms.length), terms, [
    int32(n),
    float32(identity),
    ...coefficients.map(float32),
  ]) as tf.Tensor2D;
}

/** sum_i X_i^2, [1]. */
class SumOfSquaresProgram extends ReductionProgram {
  variableNames = ['X'];
  uniforms = 'terms : i32,';
  shaderKey = 'infodisent_sum_of_squares';

  protected termCode(): string {
    return 'let x = X[i]; term = x * x;';
  }

  protected resultCode(): string {
    return 'total';
  }
}

/** The sum of the squares of a matrix's entries, [1], in one dispatch (tfjs: a multiply and a sum). */
export function sumOfSquaresWebgpu(x: tf.Tensor): tf.Tensor1D {
  return runProgram(new SumOfSquaresProgram(), [x], [int32(x.size)]) as tf.Tensor1D;
}
