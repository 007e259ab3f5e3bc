import * as tf from '@tensorflow/tfjs';
import { linearCombinationWebgpu, skewPartWebgpu, sumOfSquaresWebgpu } from './expm-webgpu';
import { matMul, matMulWithEpilogueWebgpu } from './matmul';
import type { Epilogue } from './matmul-webgpu';

/**
 * Matrix exponential of a skew-symmetric matrix by scaling and squaring of a Taylor polynomial,
 * with a hand-written reverse pass. Every product is a plain, non-transposed matmul: tfjs's wasm
 * backend leaves its fast path for any transpose flag (SPEC section 5), so transposes are explicit.
 */

/**
 * Truncation error target of the Taylor polynomial, in the spectral norm: float32's unit roundoff. E is
 * orthogonal, so this is one rounding of its entries' scale, while each of its float32 products rounds
 * ~sqrt(C) times that (max|U^T U - I| ~1e-5 at C = 512). 1e-8 cost one more C x C product at C = 2048 for
 * no visible accuracy (the fold's norm bound there is ~0.26: degree 6 instead of 7).
 */
export const TAYLOR_TOLERANCE = 2 ** -24;
const MAX_DEGREE = 18;

export interface ExpmPlan {
  /** Number of squarings: the polynomial is evaluated at S / 2^squarings. */
  squarings: number;
  /** Degree of the Taylor polynomial. */
  degree: number;
}

function logFactorial(n: number): number {
  let sum = 0;
  for (let k = 2; k <= n; k++) sum += Math.log(k);
  return sum;
}

/** Matrix products of a plan evaluated by Horner's rule (expmSkew, whose reverse pass follows it). */
function hornerCost(plan: ExpmPlan): number {
  return plan.degree - 1 + plan.squarings;
}

/**
 * The cheapest plan, by `cost` (default: Horner's matmul count), whose remainder bound
 * (norm / 2^s)^(m+1) / (m+1)! stays under the tolerance, given an upper bound of ||S||_2.
 */
export function planExpm(normBound: number, cost: (plan: ExpmPlan) => number = hornerCost): ExpmPlan {
  if (!Number.isFinite(normBound))
    throw new Error(`expm: the rotation generator has a non-finite norm (${normBound})`);
  let best: ExpmPlan = { squarings: 0, degree: 1 };
  let bestCost = Number.POSITIVE_INFINITY;
  if (normBound === 0) return best;
  for (let squarings = 0; squarings <= 40; squarings++) {
    const scaled = normBound / 2 ** squarings;
    for (let degree = 1; degree <= MAX_DEGREE; degree++) {
      const logRemainder = (degree + 1) * Math.log(scaled) - logFactorial(degree + 1);
      if (logRemainder <= Math.log(TAYLOR_TOLERANCE)) {
        const candidate = { squarings, degree };
        const candidateCost = cost(candidate);
        if (candidateCost < bestCost) {
          best = candidate;
          bestCost = candidateCost;
        }
        break;
      }
    }
  }
  return best;
}

/**
 * The plan for expmSkewValue: cheapest by its Paterson-Stockmeyer matmul count, one fewer where S^2 is
 * given (the polynomial's X^2 is then a rescaled copy).
 */
export function planExpmValue(normBound: number, withSquare = false): ExpmPlan {
  return planExpm(normBound, (plan) => {
    const p = stockmeyerBlockSize(plan.degree);
    return stockmeyerMatmuls(plan.degree, p) - (withSquare && p >= 2 ? 1 : 0) + plan.squarings;
  });
}

/** The Euclidean (Frobenius) norm. tf.norm squares through Pow, which on wasm costs ~10x a multiply. */
function euclideanNorm(t: tf.Tensor): tf.Scalar {
  return tf.sqrt(tf.sum(tf.mul(t, t))) as tf.Scalar;
}

/**
 * An upper bound of the spectral norm of a skew-symmetric S: the smaller of its Frobenius norm and
 * 1.25x a power-iteration estimate (S is normal, so power iteration on S^2 converges to ||S||^2 from below;
 * the margin covers its slow last digits). Matrix-vector products only: negligible next to a matmul.
 * One read-back at the end, asynchronous, as the webgpu backend requires.
 */
export async function skewNormBound(s: tf.Tensor2D, iterations = 12): Promise<number> {
  if (iterations === 0) {
    const frobenius = euclideanNorm(s);
    const [value] = await frobenius.data();
    frobenius.dispose();
    return value!;
  }
  const norms = tf.tidy(() => {
    const n = s.shape[0];
    // A fixed, non-degenerate start vector keeps the result deterministic.
    let v: tf.Tensor2D = tf.div(tf.linspace(1, 2, n), Math.sqrt(n)).reshape([n, 1]);
    let ratio: tf.Tensor = tf.scalar(0);
    for (let i = 0; i < iterations; i++) {
      const w = tf.matMul(s, tf.matMul(s, v));
      const wNorm = euclideanNorm(w);
      ratio = tf.div(wNorm, tf.maximum(euclideanNorm(v), 1e-30));
      v = tf.div(w, tf.maximum(wNorm, 1e-30));
    }
    return tf.stack([euclideanNorm(s), ratio]);
  });
  const [frobenius, ratio] = await norms.data();
  norms.dispose();
  if (frobenius === 0) return frobenius;
  return Math.min(frobenius!, 1.25 * Math.sqrt(ratio!));
}

/** An upper bound of ||S||_2 and, where the bound took S^2 to compute, S^2 (the caller disposes it). */
export interface SkewNorm {
  bound: number;
  square?: tf.Tensor2D;
}

/**
 * ||S^2||_F^(1/2), an upper bound of ||S||_2 (S is normal, so ||S||_2^2 = ||S^2||_2) and never above ||S||_F
 * (||S^2||_F <= ||S||_F^2), with S^2 for expmSkewValue to reuse as its X^2. After one Adam step S looks like
 * a random skew matrix, whose Frobenius norm is ~sqrt(C)/2 times its spectral norm and the square's root
 * ~(2C)^(1/4)/2 times: at C = 2048 the fold's plan drops from 6 matmuls to 4 with it. One reduction and
 * one read-back.
 */
export async function skewSquareNormBound(s: tf.Tensor2D): Promise<SkewNorm> {
  const square = matMul(s, s);
  const sumOfSquares =
    tf.getBackend() === 'webgpu' ? sumOfSquaresWebgpu(square) : tf.tidy(() => tf.sum(tf.mul(square, square)));
  const [value] = await sumOfSquares.data();
  sumOfSquares.dispose();
  return { bound: Math.sqrt(Math.sqrt(value!)), square };
}

/**
 * The bound each backend computes best. On a CPU backend the power iteration's matrix-vector products are
 * nearly free and its tighter bound saves whole matmuls. On webgpu each of its ~150 small ops is a dispatch
 * that costs more than a matmul (H200, session 1), so there the bound comes from S^2, which the fold's
 * polynomial reuses.
 */
export async function skewNorm(s: tf.Tensor2D): Promise<SkewNorm> {
  if (tf.getBackend() === 'webgpu') return skewSquareNormBound(s);
  return { bound: await skewNormBound(s) };
}

/** What the forward pass keeps for the reverse pass. */
export interface ExpmTape {
  plan: ExpmPlan;
  scaled: tf.Tensor2D;
  /** Horner intermediates Q_1 … Q_m, Q_k = I + S Q_{k+1} / k. */
  horner: tf.Tensor2D[];
  /** Squaring inputs E_0 … E_{s-1}, E_{i+1} = E_i E_i. */
  squares: tf.Tensor2D[];
}

export interface ExpmResult {
  value: tf.Tensor2D;
  tape: ExpmTape;
}

/** expm(S) for skew-symmetric S, keeping what its reverse pass needs. The caller disposes the result. */
export function expmSkew(s: tf.Tensor2D, plan: ExpmPlan): ExpmResult {
  const eye = identityOf(s.shape[0]);
  return tf.tidy(() => {
    const scaled = (plan.squarings === 0 ? tf.clone(s) : tf.mul(s, 1 / 2 ** plan.squarings)) as tf.Tensor2D;
    const horner: tf.Tensor2D[] = new Array(plan.degree);
    let q = linearCombination({ identity: 1, terms: [scaled], coefficients: [1 / plan.degree] }, eye);
    horner[plan.degree - 1] = q;
    for (let k = plan.degree - 1; k >= 1; k--) {
      q = productPlus(scaled, q, { scale: 1 / k, identity: 1, terms: [], coefficients: [] }, eye);
      horner[k - 1] = q;
    }
    const squares: tf.Tensor2D[] = [];
    let e = q;
    for (let i = 0; i < plan.squarings; i++) {
      squares.push(e);
      e = matMul(e, e);
    }
    const tape: ExpmTape = { plan, scaled, horner, squares };
    return { value: e, tape } as unknown as tf.TensorContainer;
  }) as unknown as ExpmResult;
}

/** S = X - X^T: one dispatch on webgpu, where a step is bound by dispatches; the same rounding anywhere. */
export function skewPart(x: tf.Tensor2D): tf.Tensor2D {
  if (tf.getBackend() === 'webgpu') return skewPartWebgpu(x);
  return tf.tidy(() => tf.sub(x, tf.transpose(x)) as tf.Tensor2D);
}

/** I of size n, made on first use (the webgpu paths never need it) and then reused. */
function identityOf(n: number): () => tf.Tensor2D {
  let identity: tf.Tensor2D | undefined;
  return () => {
    identity ??= tf.eye(n) as tf.Tensor2D;
    return identity;
  };
}

/**
 * identity I + sum_i coefficients[i] terms[i]: one dispatch on webgpu, else term by term in order, with
 * I from `eye`.
 */
function linearCombination({ terms, coefficients, identity }: Epilogue, eye: () => tf.Tensor2D): tf.Tensor2D {
  if (tf.getBackend() === 'webgpu' && terms.length > 0)
    return linearCombinationWebgpu(terms, coefficients, identity);
  let sum = identity === 0 ? undefined : identity === 1 ? eye() : (tf.mul(eye(), identity) as tf.Tensor2D);
  terms.forEach((term, i) => {
    const scaled = coefficients[i] === 1 ? term : (tf.mul(term, coefficients[i]!) as tf.Tensor2D);
    sum = sum ? (tf.add(sum, scaled) as tf.Tensor2D) : scaled;
  });
  return sum!;
}

/**
 * scale op(A) op(B) + identity I + sum_i c_i T_i: on webgpu one dispatch, the product scaled and the sum
 * added as it is written (the tiled kernel's epilogue); elsewhere the product, scaled, added to the sum.
 */
function productPlus(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  epilogue: Epilogue,
  eye: () => tf.Tensor2D,
  transposeA = false,
  transposeB = false,
): tf.Tensor2D {
  if (tf.getBackend() === 'webgpu') return matMulWithEpilogueWebgpu(a, b, epilogue, transposeA, transposeB);
  const product = matMul(a, b, transposeA, transposeB);
  const scaled = (epilogue.scale ?? 1) === 1 ? product : (tf.mul(product, epilogue.scale!) as tf.Tensor2D);
  if (epilogue.identity === 0 && epilogue.terms.length === 0) return scaled;
  return tf.add(linearCombination(epilogue, eye), scaled) as tf.Tensor2D;
}

/**
 * Taylor polynomial blocks for Paterson-Stockmeyer: with p, sum_k X^k / k! = sum_j (X^p)^j B_j, where
 * B_j = sum_{i<p} X^i / (jp + i)! needs only X^2 .. X^p (p - 1 matmuls), and Horner's rule in X^p takes
 * floor(m/p) more, one fewer when the last block is the scalar 1/m! (p divides m). p = 1 is plain Horner
 * (m - 1 matmuls); up to degree 18 the best p is 2 to 4 (2 for degrees 4-8).
 */
function stockmeyerBlockSize(degree: number): number {
  let best = 1;
  for (let p = 2; p <= degree; p++)
    if (stockmeyerMatmuls(degree, p) < stockmeyerMatmuls(degree, best)) best = p;
  return best;
}

function stockmeyerMatmuls(degree: number, p: number): number {
  return p - 1 + Math.floor(degree / p) - (degree % p === 0 ? 1 : 0);
}

/**
 * expm(S) alone, where no reverse pass follows (the fold, inference): the same Taylor polynomial and
 * squarings as expmSkew, its polynomial evaluated by Paterson-Stockmeyer in fewer matmuls than Horner's
 * rule. The caller disposes the result.
 */
export function expmSkewValue(s: tf.Tensor2D, plan: ExpmPlan, square?: tf.Tensor2D): tf.Tensor2D {
  const n = s.shape[0];
  const { degree } = plan;
  const p = stockmeyerBlockSize(degree);
  return tf.tidy(() => {
    const scale = 1 / 2 ** plan.squarings;
    const scaled = (plan.squarings === 0 ? s : tf.mul(s, scale)) as tf.Tensor2D;
    const eye = identityOf(n);
    // X^1 .. X^p; X^0 = I is made only where a backend needs it (each block adds its identity term).
    const powers: tf.Tensor2D[] = [scaled];
    const power = (k: number) => powers[k - 1]!;
    // (S / 2^s)^2 = S^2 / 4^s exactly: scaling by a power of two rounds nothing.
    if (square && p >= 2)
      powers.push(plan.squarings === 0 ? square : (tf.mul(square, scale * scale) as tf.Tensor2D));
    for (let k = powers.length + 1; k <= p; k++) powers.push(matMul(power(k - 1), scaled));
    // When p divides the degree the last block is the scalar 1/m!: its product with X^p needs no matmul.
    const lastIsScalar = degree % p === 0;
    const blockedDegree = lastIsScalar ? degree - 1 : degree;
    let factorial = 1; // k! of the coefficient being added
    const blocks: Epilogue[] = [];
    for (let first = 0; first <= blockedDegree; first += p) {
      // B_j = I / (jp)! + sum_{0<i<p} X^i / (jp + i)!
      const block: Epilogue = { terms: [], coefficients: [], identity: 0 };
      for (let k = first; k <= Math.min(first + p - 1, blockedDegree); k++) {
        if (k > 1) factorial *= k;
        if (k === first) block.identity = 1 / factorial;
        else {
          block.terms.push(power(k - first));
          block.coefficients.push(1 / factorial);
        }
      }
      blocks.push(block);
    }
    const top = power(p);
    const last = blocks.pop()!;
    // Where p divides the degree, the last term X^m / m! = X^p / m! joins the last block's sum.
    if (lastIsScalar) {
      last.terms.push(top);
      last.coefficients.push(1 / (factorial * degree));
    }
    let e = linearCombination(last, eye);
    for (let block = blocks.pop(); block; block = blocks.pop()) e = productPlus(top, e, block, eye);
    for (let i = 0; i < plan.squarings; i++) e = matMul(e, e);
    return e;
  });
}

/**
 * Reverse pass: given dL/dE for E = expm(S), returns dL/dS (the exact gradient of the computed polynomial).
 * Uses S^T = -S; the transposes of the tape's matrices are read in place (materialised first on wasm).
 */
export function expmSkewBackward(tape: ExpmTape, gradE: tf.Tensor2D): tf.Tensor2D {
  const eye = identityOf(gradE.shape[0]);
  return tf.tidy(() => {
    let g = gradE;
    for (let i = tape.squares.length - 1; i >= 0; i--) {
      const square = tape.squares[i]!;
      // G E^T + E^T G
      const right = matMul(g, square, false, true);
      g = productPlus(square, g, { identity: 0, terms: [right], coefficients: [1] }, eye, true);
    }
    const { degree } = tape.plan;
    // Terms summed as they come (no zero start: a step right after a fold has degree 1, one term).
    let gradScaled: tf.Tensor2D | undefined;
    let gq = g; // gradient with respect to Q_1
    for (let k = 1; k < degree; k++) {
      // + G Q_{k+1}^T / k
      const sum = gradScaled ? { terms: [gradScaled], coefficients: [1] } : { terms: [], coefficients: [] };
      gradScaled = productPlus(gq, tape.horner[k]!, { scale: 1 / k, identity: 0, ...sum }, eye, false, true);
      // S^T G / k = -S G / k
      gq = productPlus(tape.scaled, gq, { scale: -1 / k, identity: 0, terms: [], coefficients: [] }, eye);
    }
    const last = degree === 1 ? gq : (tf.mul(gq, 1 / degree) as tf.Tensor2D);
    gradScaled = gradScaled ? (tf.add(gradScaled, last) as tf.Tensor2D) : last;
    return tape.plan.squarings === 0 ? gradScaled : tf.mul(gradScaled, 1 / 2 ** tape.plan.squarings);
  });
}

export function disposeTape(tape: ExpmTape): void {
  tf.dispose([tape.scaled, ...tape.horner, ...tape.squares]);
}
