import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  disposeTape,
  type ExpmPlan,
  expmSkew,
  expmSkewBackward,
  expmSkewValue,
  planExpm,
  planExpmValue,
  skewNormBound,
  skewSquareNormBound,
  TAYLOR_TOLERANCE,
} from '../core/method/expm';
import { selectBackend } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { maxAbs, maxAbsDiff } from './support/numeric';
import { runPythonReference } from './support/python';

/**
 * expmSkew / expmSkewBackward (float32, tfjs wasm) against reference/head_reference.py, which computes
 * expm(S) in float64 from the eigendecomposition of the Hermitian iS and its reverse pass from the
 * divided differences of exp on that spectrum, cross-checked there against a Taylor expm, the
 * block-matrix Frechet derivative and central differences.
 */

interface ExpmCase {
  value: number[];
  spectral_norm: number;
  orthogonality: number;
  taylor_difference: number;
  grad?: number[];
  block_difference?: number;
  fd?: number[];
}

function logFactorial(k: number): number {
  let sum = 0;
  for (let i = 2; i <= k; i++) sum += Math.log(i);
  return sum;
}

function gaussian(random: SeededRandom, length: number, scale = 1): Float64Array {
  return Float64Array.from({ length }, () => scale * random.normal());
}

function spectralNorms(matrices: { n: number; data: ArrayLike<number> }[]): number[] {
  return runPythonReference<{ spectral: number[] }>('head_reference.py', {
    task: 'norms',
    matrices: matrices.map(({ n, data }) => ({ n, data: Array.from(data) })),
  }).spectral;
}

/** S = A - A^T in float32 exactly as the head forms it (fl(a - b) = -fl(b - a), so S is exactly skew). */
function skewOf(a: Float32Array, n: number): Float32Array {
  return tf.tidy(() => {
    const t = tf.tensor2d(a, [n, n]);
    return tf.sub(t, tf.transpose(t)).dataSync() as Float32Array;
  });
}

/** max |U^T U - I| evaluated in float64 from U's float32 entries, so the check adds no float32 rounding. */
function orthogonalityError(u: Float32Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let dot = 0;
      for (let k = 0; k < n; k++) dot += u[k * n + i]! * u[k * n + j]!;
      worst = Math.max(worst, Math.abs(dot - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

before(async () => {
  await selectBackend('wasm');
});

/*
 * Tolerances, float32 against float64. Without squarings (||S|| <= 0.25, the regime dynamic
 * trivialisation keeps A in) U is exact to a few float32 ulps: measured max|U^T U - I| <= 6e-8 and
 * max|U - U_ref| <= 3e-8, asserted 2e-7. Every squaring is one more C-term product, and wasm's matmul
 * accumulates sequentially (measured: max error of E*E 1.3e-6 at C = 256 for E ~ I), so the bound grows
 * with the squaring count s: measured orthogonality up to 3e-6 (s = 2), 6.5e-6 (s = 4), 1.35e-5 (s = 7,
 * C = 256, ||A|| = 10), max|U - U_ref| up to 3.2e-6, Horner and Paterson-Stockmeyer alike; asserted
 * 4e-6 * s.
 */
function expmTolerance(squarings: number): number {
  return squarings === 0 ? 2e-7 : 4e-6 * squarings;
}

test('expmSkew and expmSkewValue are orthogonal and equal the float64 expm for ||A|| from 1e-3 to 10 at C = 8, 64, 256', async () => {
  const random = new SeededRandom(11);
  const targets = [1e-3, 1e-2, 0.1, 0.5, 2, 10];
  const raw: { n: number; data: Float64Array }[] = [];
  for (const n of [8, 64, 256]) for (const _ of targets) raw.push({ n, data: gaussian(random, n * n) });
  const rawNorms = spectralNorms(raw);
  const cases = raw.map(({ n, data }, i) => {
    const target = targets[i % targets.length]!;
    const a = Float32Array.from(data, (x) => (x * target) / rawNorms[i]!);
    return { n, target, a, s: skewOf(a, n) };
  });
  const aNorms = spectralNorms(cases.map(({ n, a }) => ({ n, data: a })));
  const reference = runPythonReference<{ cases: ExpmCase[] }>('head_reference.py', {
    task: 'expm',
    cases: cases.map(({ n, s }) => ({ n, s: Array.from(s) })),
  }).cases;

  let worstOrthogonality = 0;
  let worstValue = 0;
  for (const [i, { n, target, s }] of cases.entries()) {
    const ref = reference[i]!;
    // The generated A has the intended spectral norm (so the sweep covers 1e-3 .. 10 as stated).
    assert.ok(Math.abs(aNorms[i]! / target - 1) < 1e-5, `||A|| = ${aNorms[i]} for target ${target}`);
    // The reference agrees with its own independent Taylor path and is orthogonal to float64 rounding.
    assert.ok(ref.taylor_difference < 1e-12, `reference eig vs Taylor: ${ref.taylor_difference}`);
    assert.ok(ref.orthogonality < 1e-13, `reference orthogonality: ${ref.orthogonality}`);

    const input = tf.tensor2d(s, [n, n]);
    const plan = planExpm(await skewNormBound(input));
    if (target <= 0.1) assert.equal(plan.squarings, 0, `C=${n} ||A||=${target}`);
    const label = `C=${n} ||A||=${target} (||S||=${ref.spectral_norm.toFixed(4)}), ${JSON.stringify(plan)}`;
    // The taped Horner evaluation and the Paterson-Stockmeyer one of the same polynomial.
    const { value: horner, tape } = expmSkew(input, plan);
    const stockmeyer = expmSkewValue(input, plan);
    // The webgpu fold's way: the bound from S^2, a plan by Paterson-Stockmeyer cost, S^2 reused.
    const squareNorm = await skewSquareNormBound(input);
    const valuePlan = planExpmValue(squareNorm.bound, true);
    const withSquare = expmSkewValue(input, valuePlan, squareNorm.square);
    for (const [name, value, tolerance] of [
      ['expmSkew', horner, expmTolerance(plan.squarings)],
      ['expmSkewValue', stockmeyer, expmTolerance(plan.squarings)],
      [
        `expmSkewValue with S^2, ${JSON.stringify(valuePlan)}`,
        withSquare,
        expmTolerance(valuePlan.squarings),
      ],
    ] as const) {
      const u = value.dataSync() as Float32Array;
      const orthogonality = orthogonalityError(u, n);
      const difference = maxAbsDiff(u, ref.value);
      worstOrthogonality = Math.max(worstOrthogonality, orthogonality);
      worstValue = Math.max(worstValue, difference);
      assert.ok(orthogonality < tolerance, `${name} ${label}: max|U^T U - I| = ${orthogonality}`);
      assert.ok(difference < tolerance, `${name} ${label}: max|U - U_ref| = ${difference}`);
    }
    // Without squarings the value is the tape's first Horner term: disposed with it, after reading.
    disposeTape(tape);
    tf.dispose([input, horner, stockmeyer, withSquare, squareNorm.square!]);
  }
  console.log(
    `expm: worst max|U^T U - I| ${worstOrthogonality.toExponential(2)}, worst max|U - U_ref| ${worstValue.toExponential(2)}`,
  );
});

test('expmSkewValue evaluates the same Taylor polynomial as expmSkew in fewer matmuls than Horner (m - 1)', async () => {
  const s = tf.tensor2d(
    skewOf(
      Float32Array.from(gaussian(new SeededRandom(3), 64), (x) => 0.1 * x),
      8,
    ),
    [8, 8],
  );
  for (const [degree, matmuls] of [
    [1, 0],
    [2, 1],
    [4, 2],
    [8, 4],
    [18, 7],
  ] as const) {
    const profile = await tf.profile(() => expmSkewValue(s, { degree, squarings: 1 }));
    const counted = profile.kernels.filter((kernel) => kernel.name === 'BatchMatMul').length;
    assert.equal(counted, matmuls + 1, `degree ${degree}: ${counted} matmuls with one squaring`);
    // The same polynomial as the taped Horner evaluation, to float32 rounding.
    const { value: horner, tape } = expmSkew(s, { degree, squarings: 1 });
    const difference = maxAbsDiff(horner.dataSync(), (profile.result as tf.Tensor).dataSync());
    assert.ok(difference < 1e-6, `degree ${degree}: ${difference} from Horner`);
    disposeTape(tape);
    tf.dispose([horner, profile.result]);
  }
  s.dispose();
});

test('planExpm: a valid remainder bound, no squarings for small norms, cost growing with the norm', () => {
  assert.deepEqual(planExpm(0), { squarings: 0, degree: 1 });
  assert.throws(() => planExpm(Number.NaN), /non-finite/);
  assert.throws(() => planExpm(Number.POSITIVE_INFINITY), /non-finite/);
  const grid: number[] = [];
  for (let x = 1e-6; x < 500; x *= 1.05) grid.push(x);
  const plans = grid.map((x) => planExpm(x));
  let previousCost = 0;
  plans.forEach((plan, i) => {
    const x = grid[i]!;
    const scaled = x / 2 ** plan.squarings;
    // Taylor remainder (||S||/2^s)^(m+1)/(m+1)! below float32's unit roundoff.
    const logRemainder = (plan.degree + 1) * Math.log(scaled) - logFactorial(plan.degree + 1);
    assert.ok(
      logRemainder <= Math.log(TAYLOR_TOLERANCE) + 1e-9,
      `norm ${x}: remainder ${Math.exp(logRemainder)}`,
    );
    assert.ok(plan.degree >= 1 && plan.degree <= 18, `norm ${x}: degree ${plan.degree}`);
    const cost = plan.degree - 1 + plan.squarings;
    assert.ok(cost >= previousCost, `norm ${x}: matmul count fell from ${previousCost} to ${cost}`);
    previousCost = cost;
    // After a fold ||S|| is small: a low-degree polynomial with no squaring at all.
    if (x <= 0.25) assert.equal(plan.squarings, 0, `norm ${x}: ${JSON.stringify(plan)}`);
    if (x <= 1e-3) assert.ok(plan.degree <= 2, `norm ${x}: ${JSON.stringify(plan)}`);
    // Squarings grow like log2 of the norm: never more than needed to bring it to ~0.1 (each extra
    // squaring doubles the float32 rounding of the result)...
    if (plan.squarings > 0) assert.ok(scaled >= 0.1, `norm ${x}: ${JSON.stringify(plan)}`);
    // ... and (the cost-optimal trade-off may move one squaring into the degree) a norm 4x larger
    // never takes fewer squarings.
    for (let j = i + 1; j < grid.length; j++) {
      if (grid[j]! >= 4 * x) {
        assert.ok(plans[j]!.squarings >= plan.squarings, `norm ${x} -> ${grid[j]}`);
        break;
      }
    }
  });
  assert.ok(planExpm(100).squarings > planExpm(1).squarings);
});

/** Skew matrices of several structures, each as A (S = A - A^T is formed in float32 by skewOf). */
function structuredGenerators(random: SeededRandom, n: number): { name: string; a: Float32Array }[] {
  const out: { name: string; a: Float32Array }[] = [];
  out.push({ name: 'dense gaussian', a: Float32Array.from(gaussian(random, n * n)) });
  for (const rank of [1, 2]) {
    // A = sum_r u_r w_r^T: S has rank 2r with a few large singular values and a null space.
    const a = new Float32Array(n * n);
    for (let r = 0; r < rank; r++) {
      const u = gaussian(random, n);
      const w = gaussian(random, n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j]! += u[i]! * w[j]!;
    }
    out.push({ name: `rank ${rank}`, a });
  }
  {
    // A decaying spectrum: a dominant 2x2 plane on two random coordinates plus a weak dense part.
    const a = Float32Array.from(gaussian(random, n * n, 0.05 / Math.sqrt(n)));
    const i = random.int(0, n - 1);
    const j = (i + 1 + random.int(0, n - 2)) % n;
    a[i * n + j] = 3;
    out.push({ name: 'dominant plane', a });
  }
  {
    // Banded (a chain of nearest-neighbour rotations): a flat spectrum whose top values are close.
    const a = new Float32Array(n * n);
    for (let i = 0; i + 1 < n; i++) a[i * n + i + 1] = 1 + 0.1 * random.normal();
    out.push({ name: 'banded', a });
  }
  {
    // What one Adam step from A = 0 gives: lr * sign(gradient).
    const a = Float32Array.from(gaussian(random, n * n), (x) => 0.01 * Math.sign(x));
    out.push({ name: 'adam sign step', a });
  }
  return out;
}

test('skewNormBound bounds the spectral norm from above (and within 1.25x) on random skew matrices', async () => {
  const cases: { label: string; n: number; s: Float32Array }[] = [];
  for (const seed of [1, 2, 3, 4]) {
    const random = new SeededRandom(100 + seed);
    for (const n of [8, 64, 200]) {
      for (const { name, a } of structuredGenerators(random, n)) {
        cases.push({ label: `seed ${seed} C=${n} ${name}`, n, s: skewOf(a, n) });
      }
    }
  }
  const norms = spectralNorms(cases.map(({ n, s }) => ({ n, data: s })));
  let tightest = Number.POSITIVE_INFINITY;
  let loosest = 0;
  for (const [i, { label, n, s }] of cases.entries()) {
    const input = tf.tensor2d(s, [n, n]);
    const bound = await skewNormBound(input);
    input.dispose();
    const ratio = bound / norms[i]!;
    tightest = Math.min(tightest, ratio);
    loosest = Math.max(loosest, ratio);
    // float32 rounding of the norms themselves: 1e-5 relative slack.
    assert.ok(ratio >= 1 - 1e-5, `${label}: bound ${bound} < ||S||_2 ${norms[i]}`);
    assert.ok(ratio <= 1.25 * (1 + 1e-5), `${label}: bound ${bound} is loose against ${norms[i]}`);
  }
  const zero = tf.zeros([5, 5]) as tf.Tensor2D;
  assert.equal(await skewNormBound(zero), 0);
  zero.dispose();
  console.log(
    `skewNormBound / ||S||_2 over ${cases.length} matrices: ${tightest.toFixed(4)} .. ${loosest.toFixed(4)}`,
  );
  // The bound from S^2: above ||S||_2, never above the Frobenius norm, and for what one Adam step gives
  // (a random sign matrix) at C = 200 at least twice tighter than it.
  for (const [i, { label, n, s }] of cases.entries()) {
    const input = tf.tensor2d(s, [n, n]);
    const { bound, square } = await skewSquareNormBound(input);
    const frobenius = await skewNormBound(input, 0);
    const product = tf.matMul(input, input);
    assert.ok(maxAbsDiff(await square!.data(), await product.data()) <= 1e-6 * maxAbs(await product.data()));
    tf.dispose([input, square!, product]);
    assert.ok(bound >= norms[i]! * (1 - 1e-5), `${label}: S^2 bound ${bound} < ||S||_2 ${norms[i]}`);
    assert.ok(bound <= frobenius * (1 + 1e-6), `${label}: S^2 bound ${bound} above ||S||_F ${frobenius}`);
    if (n === 200 && label.endsWith('adam sign step'))
      assert.ok(bound < frobenius / 2, `${label}: ${bound} against ||S||_F ${frobenius}`);
  }
});

test('planExpmValue: a valid remainder bound at a Paterson-Stockmeyer cost never above that of the Horner plan', async () => {
  const s = tf.tensor2d(
    skewOf(
      Float32Array.from(gaussian(new SeededRandom(9), 16), (x) => 0.1 * x),
      4,
    ),
    [4, 4],
  );
  const square = tf.matMul(s, s) as tf.Tensor2D;
  // Counted on the value path itself: expmSkewValue's BatchMatMul kernels.
  const matmuls = async (plan: ExpmPlan, withSquare: boolean) => {
    const profile = await tf.profile(() => expmSkewValue(s, plan, withSquare ? square : undefined));
    (profile.result as tf.Tensor).dispose();
    return profile.kernels.filter((kernel) => kernel.name === 'BatchMatMul').length;
  };
  for (let x = 1e-4; x < 50; x *= 1.7) {
    for (const withSquare of [false, true]) {
      const plan = planExpmValue(x, withSquare);
      const logRemainder =
        (plan.degree + 1) * Math.log(x / 2 ** plan.squarings) - logFactorial(plan.degree + 1);
      assert.ok(
        logRemainder <= Math.log(TAYLOR_TOLERANCE) + 1e-9,
        `norm ${x}: remainder ${Math.exp(logRemainder)}`,
      );
      const horner = planExpm(x);
      const label = `norm ${x}, S^2 given ${withSquare}: ${JSON.stringify(plan)} against ${JSON.stringify(horner)}`;
      assert.ok((await matmuls(plan, withSquare)) <= (await matmuls(horner, withSquare)), label);
    }
  }
  tf.dispose([s, square]);
});

/*
 * Reverse pass. The reference gradient is the exact adjoint of the Frechet derivative, L(S^T, G); the TS
 * one is the exact gradient of the evaluated polynomial, which differs from it by the Taylor truncation
 * (< 1e-7 relative) plus float32 rounding through the squarings. Measured max|dS - dS_ref| / max|dS_ref|
 * <= 6.7e-6, and <= 2.7e-6 against the finite differences; asserted 1e-4 (a float32 target).
 */
const GRADIENT_TOLERANCE = 1e-4;

test('expmSkewBackward equals the float64 reference gradient and float64 finite differences', async () => {
  const random = new SeededRandom(23);
  const settings = [
    { n: 8, target: 0.5 },
    { n: 8, target: 10 },
    { n: 64, target: 1e-3 },
    { n: 64, target: 0.5 },
    { n: 64, target: 3 },
    { n: 256, target: 0.5 },
    { n: 256, target: 10 },
  ];
  const raw = settings.map(({ n }) => ({ n, data: gaussian(random, n * n) }));
  const rawNorms = spectralNorms(raw);
  const cases = settings.map(({ n, target }, i) => {
    const a = Float32Array.from(raw[i]!.data, (x) => (x * target) / rawNorms[i]!);
    const grad = Float32Array.from(gaussian(random, n * n));
    // Every entry for C = 8; otherwise a sample that includes diagonal and mirrored pairs.
    const entries: [number, number][] = [];
    if (n === 8) {
      for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) entries.push([r, c]);
    } else {
      const count = n === 256 ? 3 : 10;
      for (let e = 0; e < count; e++) {
        const r = random.int(0, n - 1);
        const c = random.int(0, n - 1);
        entries.push([r, c], [c, r], [r, r]);
      }
    }
    return { n, target, s: skewOf(a, n), grad, entries };
  });
  const reference = runPythonReference<{ cases: ExpmCase[] }>('head_reference.py', {
    task: 'expm',
    cases: cases.map(({ n, s, grad, entries }) => ({
      n,
      s: Array.from(s),
      grad_out: Array.from(grad),
      fd_entries: entries,
    })),
  }).cases;

  let worst = 0;
  let worstFd = 0;
  for (const [i, { n, target, s, grad, entries }] of cases.entries()) {
    const ref = reference[i]!;
    const refGrad = ref.grad!;
    const scale = maxAbs(refGrad);
    const label = `C=${n} ||A||=${target}`;
    // The reference's two analytic paths agree, and finite differences confirm them.
    assert.ok(
      ref.block_difference! < 1e-10 * scale,
      `${label}: reference eig vs block ${ref.block_difference}`,
    );
    entries.forEach(([r, c], e) => {
      const fdError = Math.abs(ref.fd![e]! - refGrad[r * n + c]!);
      assert.ok(fdError < 1e-6 * scale, `${label}: reference vs FD at (${r}, ${c}): ${fdError}`);
    });

    const input = tf.tensor2d(s, [n, n]);
    const { value, tape } = expmSkew(input, planExpm(await skewNormBound(input)));
    const gradS = tf.tidy(() => expmSkewBackward(tape, tf.tensor2d(grad, [n, n])));
    const got = gradS.dataSync() as Float32Array;
    tf.dispose([input, value, gradS]);
    disposeTape(tape);

    const relative = maxAbsDiff(got, refGrad) / scale;
    worst = Math.max(worst, relative);
    assert.ok(relative < GRADIENT_TOLERANCE, `${label}: max|dS - dS_ref| / max|dS_ref| = ${relative}`);
    entries.forEach(([r, c], e) => {
      const fdRelative = Math.abs(got[r * n + c]! - ref.fd![e]!) / scale;
      worstFd = Math.max(worstFd, fdRelative);
      assert.ok(fdRelative < GRADIENT_TOLERANCE, `${label}: dS vs FD at (${r}, ${c}): ${fdRelative}`);
    });
  }
  console.log(
    `expm backward: worst relative error ${worst.toExponential(2)} vs analytic, ${worstFd.toExponential(2)} vs FD`,
  );
});
