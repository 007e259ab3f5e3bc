import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { type FeatureShape, InMemoryFeatureSet } from '../core/features/feature-set';
import { Adam, type ParameterGroup } from '../core/method/adam';
import { BaselineHead } from '../core/method/baseline-head';
import { evaluateHead } from '../core/method/evaluate';
import type { Head } from '../core/method/head';
import { InfoDisentHead } from '../core/method/infodisent-head';
import { decodeTensors } from '../core/method/tensor-io';
import {
  type CheckpointSink,
  optimiserStep,
  type TrainOptions,
  trainHead,
  validationMask,
} from '../core/method/train';
import { selectBackend } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { gaussian, maxAbs, maxAbsDiff, relativeError } from './support/numeric';
import { runPythonReference } from './support/python';

/**
 * The heads (float32, tfjs wasm) against reference/head_reference.py (float64 NumPy, written from SPEC
 * section 1: expm by eigendecomposition, analytic gradients checked there by central differences,
 * PyTorch's AdamW), then properties of training: W >= 0, convergence, exact resume, determinism.
 */

interface InfoDisentReference {
  rotation: number[];
  logits: number[];
  pooled: number[];
  argmax: number[];
  argmin: number[];
  extreme_gap: number;
  loss: number;
  grad: { rotation: number[]; weight: number[]; bias: number[] };
  fd: { rotation?: number[]; weight?: number[]; bias?: number[] };
  step: {
    rotation: number[];
    weight: number[];
    weight_unprojected: number[];
    bias: number[];
    base_folded: number[];
    clipped: number;
    logits: number[];
  };
}

interface BaselineReference {
  pooled: number[];
  logits: number[];
  loss: number;
  grad: { weight: number[]; bias: number[] };
  fd: { weight: number[]; bias: number[] };
  step: { weight: number[]; bias: number[] };
}

before(async () => {
  await selectBackend('wasm');
});

// ------------------------------------------------------------------------------------------------
// Helpers

/**
 * Largest |step(p, g) - step(p, g_ref)| a gradient error can cause in Adam's first step, whose update
 * lr g / (|g| + eps) has slope lr eps / (|g| + eps)^2 (mean value theorem over [g_ref, g]; the slope is
 * largest at the smallest |g| on the segment, 0 if it changes sign), plus float32 rounding of p.
 * Entries with |g| >> eps are insensitive; only a near-zero gradient can flip its step.
 */
function firstStepTolerance(gRef: number, g: number, lr: number, rounding: number): number {
  const eps = 1e-8;
  const smallest = Math.sign(gRef) === Math.sign(g) ? Math.min(Math.abs(gRef), Math.abs(g)) : 0;
  return rounding + Math.min(2 * lr, (lr * eps * Math.abs(g - gRef)) / (smallest + eps) ** 2);
}

function values(tensor: tf.Tensor): Float32Array {
  return tensor.dataSync() as Float32Array;
}

/** A random orthogonal C x C matrix (Gram-Schmidt in float64 of a Gaussian matrix), rows stored row-major. */
function randomOrthogonal(random: SeededRandom, n: number): Float32Array {
  const rows = Array.from({ length: n }, () => Float64Array.from({ length: n }, () => random.normal()));
  for (let i = 0; i < n; i++) {
    const row = rows[i]!;
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < i; j++) {
        const other = rows[j]!;
        let dot = 0;
        for (let k = 0; k < n; k++) dot += row[k]! * other[k]!;
        for (let k = 0; k < n; k++) row[k]! -= dot * other[k]!;
      }
    }
    const norm = Math.hypot(...row);
    for (let k = 0; k < n; k++) row[k]! /= norm;
  }
  const out = new Float32Array(n * n);
  rows.forEach((row, i) => {
    out.set(row, i * n);
  });
  return out;
}

function transpose(matrix: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = matrix[i * n + j]!;
  return out;
}

function shapeOf(hw: number, c: number): FeatureShape {
  const side = Math.round(Math.sqrt(hw));
  assert.equal(side * side, hw);
  return { height: side, width: side, channels: c };
}

interface HeadCase {
  c: number;
  hw: number;
  k: number;
  n: number;
  maps: Float32Array;
  labels: Int32Array;
  a: Float32Array;
  base: Float32Array;
  weight: Float32Array;
  bias: Float32Array;
}

/** Features of both signs (both pooling branches matter), ||A|| ~ 0.5, a random orthogonal base. */
function headCase(seed: number, c: number, hw: number, k: number, weightLow: number): HeadCase {
  const random = new SeededRandom(seed);
  const n = 8;
  return {
    c,
    hw,
    k,
    n,
    maps: gaussian(random, n * hw * c),
    labels: Int32Array.from({ length: n }, () => random.int(0, k - 1)),
    // A Gaussian C x C matrix has spectral norm ~ 2 sqrt(C).
    a: gaussian(random, c * c, 0.5 / (2 * Math.sqrt(c))),
    base: randomOrthogonal(random, c),
    // Every 4th entry near 0 (below one step of lr * sign(g)): the projection then has work to do.
    weight: Float32Array.from({ length: k * c }, (_, i) =>
      random.uniform(weightLow, i % 4 === 0 ? 0.02 : 0.3),
    ),
    bias: gaussian(random, k, 0.1),
  };
}

const GROUPS: Record<string, ParameterGroup> = {
  rotation: { learningRate: 0.01, weightDecay: 0 },
  weight: { learningRate: 0.05, weightDecay: 0.01 },
  bias: { learningRate: 0.02, weightDecay: 0.001 },
};

function referenceGroups(names: string[]): Record<string, { lr: number; weight_decay: number }> {
  return Object.fromEntries(
    names.map((name) => [name, { lr: GROUPS[name]!.learningRate, weight_decay: GROUPS[name]!.weightDecay }]),
  );
}

/** A fresh InfoDisent head holding exactly the case's parameters. */
function infoDisentHead(test: HeadCase, foldEvery: number): InfoDisentHead {
  const head = new InfoDisentHead(shapeOf(test.hw, test.c), test.k, { seed: 1, foldEvery });
  head.restore({
    rotation: tf.tensor2d(test.a, [test.c, test.c]),
    base: tf.tensor2d(test.base, [test.c, test.c]),
    baseT: tf.tensor2d(transpose(test.base, test.c), [test.c, test.c]),
    weight: tf.tensor2d(test.weight, [test.k, test.c]),
    bias: tf.tensor2d(test.bias, [test.k, 1]),
  });
  return head;
}

/** One optimiser step exactly as trainHead takes it (step 1, learning-rate scale 1). */
async function adamStep(head: Head, maps: Float32Array, labels: Int32Array): Promise<void> {
  const adam = new Adam();
  (await optimiserStep(head, adam, { maps, labels }, GROUPS, 1)).dispose();
  adam.dispose();
}

// ------------------------------------------------------------------------------------------------
// Against the float64 reference

/*
 * Tolerances (float32 against float64, both on the same float32 inputs):
 * - logits, pooling, loss: U has ~1e-7..1e-6 error (expm with 2-3 squarings at ||S|| ~ 1, see
 *   expm.test.ts), and Z, p, W p are C-term float32 sums; measured max relative error 7e-7 (logits),
 *   9e-7 (pooling), 1.2e-7 (loss); asserted 1e-5.
 * - gradients: dL/dA goes through dL/dU (n*HW-term sums), the expm reverse pass and a skew part;
 *   measured max|g - g_ref| / max|g_ref| <= 4.3e-7 (A), 8e-7 (W), 3.6e-7 (b); asserted 1e-4.
 * - one Adam step: its first update is lr * g / (|g| + eps) ~ lr * sign(g), insensitive to the gradient's
 *   relative error except where |g| is within a few eps of 0; each entry is allowed 1e-6 (float32
 *   rounding of p - lr sign(g)) plus what the measured gradient error can move it (firstStepTolerance).
 */
const FORWARD_TOLERANCE = 1e-5;
const GRADIENT_TOLERANCE = 1e-4;
const STEP_ROUNDING = 1e-6;

/** Parameters after the first step against the reference's, entry by entry (see firstStepTolerance). */
function assertStep(
  label: string,
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  refGrad: ArrayLike<number>,
  headGrad: ArrayLike<number>,
  group: string,
): void {
  const lr = GROUPS[group]!.learningRate;
  let sensitive = 0;
  for (let i = 0; i < expected.length; i++) {
    const tolerance = firstStepTolerance(refGrad[i]!, headGrad[i]!, lr, STEP_ROUNDING);
    if (tolerance > 2 * STEP_ROUNDING) sensitive++;
    const error = Math.abs(got[i]! - expected[i]!);
    assert.ok(
      error <= tolerance,
      `${label}[${i}] after the step: ${error} > ${tolerance} (g_ref ${refGrad[i]})`,
    );
  }
  // The allowance only matters for the odd near-zero gradient entry, not for the bulk.
  assert.ok(
    sensitive <= Math.max(1, expected.length / 100),
    `${label}: ${sensitive} entries near a zero gradient`,
  );
}

const SHAPES: { c: number; hw: number; k: number }[] = [];
for (const c of [16, 64]) for (const hw of [4, 49]) for (const k of [3, 10]) SHAPES.push({ c, hw, k });

test('InfoDisentHead: logits, sparse pooling, loss, gradients and one AdamW step + projection + fold equal the float64 reference', async () => {
  const worst = { logits: 0, pooled: 0, loss: 0, rotation: 0, weight: 0, bias: 0, fd: 0, step: 0, base: 0 };
  for (const [index, { c, hw, k }] of SHAPES.entries()) {
    const label = `C=${c} HW=${hw} K=${k}`;
    // W from 0: entries below lr with a positive gradient cross zero and get projected back.
    const tc = headCase(1000 + index, c, hw, k, 0);
    const random = new SeededRandom(2000 + index);
    // Finite differences over every entry of A at C = 16; a sample (with mirrored pairs) at C = 64.
    const fdEntries: [number, number][] | 'all' =
      c === 16
        ? 'all'
        : Array.from(
            { length: 12 },
            () => [random.int(0, c - 1), random.int(0, c - 1)] as [number, number],
          ).flatMap(
            ([i, j]) =>
              [
                [i, j],
                [j, i],
              ] as [number, number][],
          );
    const ref = runPythonReference<InfoDisentReference>('head_reference.py', {
      task: 'infodisent',
      n: tc.n,
      hw,
      c,
      k,
      features: Array.from(tc.maps),
      labels: Array.from(tc.labels),
      a: Array.from(tc.a),
      base: Array.from(tc.base),
      weight: Array.from(tc.weight),
      bias: Array.from(tc.bias),
      fd_a_entries: fdEntries,
      fd_linear: true,
      adam: { groups: referenceGroups(['rotation', 'weight', 'bias']) },
    });

    const head = infoDisentHead(tc, 0);
    const rotation = await head.rotation();
    assert.ok(maxAbsDiff(values(rotation), ref.rotation) < 5e-6, `${label}: U`);
    rotation.dispose();

    const logits = await head.logits(tc.maps);
    const e = relativeError(values(logits), ref.logits);
    worst.logits = Math.max(worst.logits, e);
    assert.ok(e < FORWARD_TOLERANCE, `${label}: logits ${e}`);
    logits.dispose();

    const pool = await head.pool(tc.maps);
    const ep = relativeError(values(pool.pooled), ref.pooled);
    worst.pooled = Math.max(worst.pooled, ep);
    assert.ok(ep < FORWARD_TOLERANCE, `${label}: pooled ${ep}`);
    // The same extreme pixels (the gradient is only comparable then): float32 could pick another one
    // only where two candidates lie within its rounding, which the reference's smallest gap shows.
    const tie = `${label}: smallest top-2 gap ${ref.extreme_gap}`;
    assert.deepEqual(Array.from(pool.argmax.dataSync()), ref.argmax, `argmax, ${tie}`);
    assert.deepEqual(Array.from(pool.argmin.dataSync()), ref.argmin, `argmin, ${tie}`);
    // Both branches are exercised: some channels pool to a positive max, some to a negative min.
    assert.ok(ref.pooled.some((p) => p > 0) && ref.pooled.some((p) => p < 0), `${label}: pooled signs`);
    tf.dispose(Object.values(pool));

    const { loss: lossTensor, gradients } = await head.lossAndGradients(tc.maps, tc.labels);
    const loss = values(lossTensor)[0]!;
    lossTensor.dispose();
    const headGrad = Object.fromEntries(
      Object.entries(gradients).map(([name, t]) => [name, values(t).slice()]),
    );
    const el = Math.abs(loss - ref.loss) / ref.loss;
    worst.loss = Math.max(worst.loss, el);
    assert.ok(el < FORWARD_TOLERANCE, `${label}: loss ${loss} vs ${ref.loss}`);
    for (const name of ['rotation', 'weight', 'bias'] as const) {
      const got = values(gradients[name]!);
      const expected = ref.grad[name];
      const scale = maxAbs(expected);
      const eg = relativeError(got, expected);
      worst[name] = Math.max(worst[name], eg);
      assert.ok(eg < GRADIENT_TOLERANCE, `${label}: d loss / d ${name}: ${eg}`);
      // Central differences of the float64 loss confirm both the reference and the head.
      const fd = ref.fd[name]!;
      const entries =
        name === 'rotation' && fdEntries !== 'all'
          ? fdEntries.map(([i, j]) => i * c + j)
          : fd.map((_, i) => i);
      entries.forEach((flat, i) => {
        assert.ok(
          Math.abs(fd[i]! - expected[flat]!) < 1e-6 * scale,
          `${label}: reference vs FD, ${name}[${flat}]`,
        );
        const ef = Math.abs(fd[i]! - got[flat]!) / scale;
        worst.fd = Math.max(worst.fd, ef);
        assert.ok(ef < GRADIENT_TOLERANCE, `${label}: head vs FD, ${name}[${flat}]: ${ef}`);
      });
    }
    // The gradient of A is that of a function of A - A^T: exactly skew.
    const ga = values(gradients['rotation']!);
    for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) assert.ok(ga[i * c + j]! + ga[j * c + i]! === 0);
    tf.dispose(Object.values(gradients));
    head.dispose();

    // One AdamW step, the projection W <- max(W, 0), and (foldEvery 1) the fold B <- expm(A - A^T) B, A <- 0.
    assert.ok(ref.step.clipped > 0, `${label}: the step should push some W entries below 0`);
    for (const foldEvery of [0, 1]) {
      const stepped = infoDisentHead(tc, foldEvery);
      await adamStep(stepped, tc.maps, tc.labels);
      const state = stepped.state();
      const weight = values(state['weight']!);
      ref.step.weight_unprojected.forEach((w, i) => {
        if (w < 0) assert.equal(weight[i], 0, `${label}: projected W entry ${i}`);
      });
      assert.ok(weight.every((w) => w >= 0));
      const checks: [string, ArrayLike<number>, ArrayLike<number>][] = [
        ['weight', weight, ref.step.weight],
        ['bias', values(state['bias']!), ref.step.bias],
      ];
      if (foldEvery === 0) {
        checks.push(['rotation', values(state['rotation']!), ref.step.rotation]);
        assert.deepEqual(values(state['base']!), tc.base, `${label}: no fold keeps the base`);
      } else {
        assert.ok(
          values(state['rotation']!).every((x) => x === 0),
          `${label}: the fold resets A`,
        );
        const eb = maxAbsDiff(values(state['base']!), ref.step.base_folded);
        worst.base = Math.max(worst.base, eb);
        assert.ok(eb < 1e-5, `${label}: folded base ${eb}`);
        assert.deepEqual(
          values(state['baseT']!),
          transpose(values(state['base']!), c),
          `${label}: baseT is the base's transpose`,
        );
      }
      for (const [name, got, expected] of checks) {
        worst.step = Math.max(worst.step, maxAbsDiff(got, expected));
        assertStep(
          `${label} foldEvery=${foldEvery}: ${name}`,
          got,
          expected,
          ref.grad[name as 'weight'],
          headGrad[name]!,
          name,
        );
      }
      // Folding re-expresses the same U: the logits after the step are the same either way.
      const after = await stepped.logits(tc.maps);
      const ea = relativeError(values(after), ref.step.logits);
      assert.ok(ea < FORWARD_TOLERANCE, `${label} foldEvery=${foldEvery}: logits after the step ${ea}`);
      after.dispose();
      stepped.dispose();
    }
  }
  console.log(
    `InfoDisent vs float64 (worst): ${Object.entries(worst)
      .map(([name, v]) => `${name} ${v.toExponential(2)}`)
      .join(', ')}`,
  );
});

test('BaselineHead: average pooling, logits, loss, gradients and one AdamW step equal the float64 reference', async () => {
  const worst = { pooled: 0, logits: 0, loss: 0, weight: 0, bias: 0, fd: 0, step: 0 };
  for (const [index, { c, hw, k }] of SHAPES.entries()) {
    const label = `C=${c} HW=${hw} K=${k}`;
    const tc = headCase(3000 + index, c, hw, k, -0.3);
    const ref = runPythonReference<BaselineReference>('head_reference.py', {
      task: 'baseline',
      n: tc.n,
      hw,
      c,
      k,
      features: Array.from(tc.maps),
      labels: Array.from(tc.labels),
      weight: Array.from(tc.weight),
      bias: Array.from(tc.bias),
      fd_linear: true,
      adam: { groups: referenceGroups(['weight', 'bias']) },
    });
    const make = () => {
      const head = new BaselineHead(shapeOf(hw, c), k, { seed: 1 });
      head.restore({ weight: tf.tensor2d(tc.weight, [k, c]), bias: tf.tensor2d(tc.bias, [k, 1]) });
      return head;
    };
    const head = make();
    const pooled = head.pool(tc.maps);
    const logits = await head.logits(tc.maps);
    const forward: [keyof typeof worst, number][] = [
      ['pooled', relativeError(values(pooled), ref.pooled)],
      ['logits', relativeError(values(logits), ref.logits)],
    ];
    tf.dispose([pooled, logits]);
    const { loss, gradients } = await head.lossAndGradients(tc.maps, tc.labels);
    forward.push(['loss', Math.abs(values(loss)[0]! - ref.loss) / ref.loss]);
    loss.dispose();
    for (const [name, error] of forward) {
      worst[name] = Math.max(worst[name], error);
      assert.ok(error < FORWARD_TOLERANCE, `${label}: ${name} ${error}`);
    }
    const headGrad = Object.fromEntries(
      Object.entries(gradients).map(([name, t]) => [name, values(t).slice()]),
    );
    for (const name of ['weight', 'bias'] as const) {
      const got = values(gradients[name]!);
      const eg = relativeError(got, ref.grad[name]);
      worst[name] = Math.max(worst[name], eg);
      assert.ok(eg < GRADIENT_TOLERANCE, `${label}: d loss / d ${name}: ${eg}`);
      const scale = maxAbs(ref.grad[name]);
      assert.ok(
        maxAbsDiff(ref.fd[name], ref.grad[name]) < 1e-6 * scale,
        `${label}: reference vs FD, ${name}`,
      );
      const ef = maxAbsDiff(got, ref.fd[name]) / scale;
      worst.fd = Math.max(worst.fd, ef);
      assert.ok(ef < GRADIENT_TOLERANCE, `${label}: head vs FD, ${name}: ${ef}`);
    }
    tf.dispose(Object.values(gradients));
    head.dispose();

    // No projection for the baseline: W keeps its negative entries.
    const stepped = make();
    await adamStep(stepped, tc.maps, tc.labels);
    const state = stepped.state();
    assert.ok(values(state['weight']!).some((w) => w < 0));
    for (const name of ['weight', 'bias'] as const) {
      const got = values(state[name]!);
      worst.step = Math.max(worst.step, maxAbsDiff(got, ref.step[name]));
      assertStep(`${label}: ${name}`, got, ref.step[name], ref.grad[name], headGrad[name]!, name);
    }
    stepped.dispose();
  }
  console.log(
    `Baseline vs float64 (worst): ${Object.entries(worst)
      .map(([name, v]) => `${name} ${v.toExponential(2)}`)
      .join(', ')}`,
  );
});

// ------------------------------------------------------------------------------------------------
// Properties computed in TypeScript

test('sparse pooling equals its definition max(0, max Z) - max(0, max -Z) on random and structured maps', async () => {
  // Random: U from the head (A != 0, orthogonal base), Z = U F evaluated in float64 here.
  const tc = headCase(4242, 16, 49, 3, 0);
  const { c, hw, n } = tc;
  const head = infoDisentHead(tc, 0);
  const rotation = await head.rotation();
  const u = values(rotation);
  rotation.dispose();
  const pool = await head.pool(tc.maps);
  const pooled = values(pool.pooled);
  const argmax = pool.argmax.dataSync();
  const argmin = pool.argmin.dataSync();
  let worst = 0;
  let positives = 0;
  let negatives = 0;
  for (let image = 0; image < n; image++) {
    for (let channel = 0; channel < c; channel++) {
      let top = Number.NEGATIVE_INFINITY;
      let bottom = Number.POSITIVE_INFINITY;
      let topAt = -1;
      let bottomAt = -1;
      for (let pixel = 0; pixel < hw; pixel++) {
        let z = 0;
        for (let d = 0; d < c; d++) z += u[channel * c + d]! * tc.maps[(image * hw + pixel) * c + d]!;
        if (z > top) [top, topAt] = [z, pixel];
        if (z < bottom) [bottom, bottomAt] = [z, pixel];
      }
      const p = Math.max(0, top) - Math.max(0, -bottom);
      const at = image * c + channel;
      worst = Math.max(worst, Math.abs(pooled[at]! - p));
      assert.equal(argmax[at], topAt);
      assert.equal(argmin[at], bottomAt);
      if (top > 0) positives++;
      if (bottom < 0) negatives++;
    }
  }
  assert.ok(positives > 0 && negatives > 0);
  // Float32 product against float64 on the same U: C-term sums of O(1) values.
  assert.ok(worst < 1e-5, `pooling vs definition: ${worst}`);
  tf.dispose(Object.values(pool));
  head.dispose();

  // Structured, with U = I (a fresh head, A = 0, B = I: the rotation is exact) on one 2x2 map:
  // channel 0 all positive -> its max; 1 all negative -> its min; 2 all zero -> 0; 3 mixed -> max + min.
  const plain = new InfoDisentHead({ height: 2, width: 2, channels: 4 }, 2, { seed: 3, foldEvery: 0 });
  const pixels = [
    [0.5, -0.25, 0, 2],
    [1.5, -2, 0, -3],
    [0.25, -0.5, 0, 0.5],
    [1, -1, 0, -0.5],
  ];
  const structured = await plain.pool(Float32Array.from(pixels.flat()));
  assert.deepEqual(Array.from(values(structured.pooled)), [1.5, -2, 0, 2 - 3]);
  assert.deepEqual(Array.from(structured.argmax.dataSync()).slice(0, 2), [1, 0]);
  assert.deepEqual(Array.from(structured.argmin.dataSync()).slice(0, 2), [2, 1]);
  tf.dispose(Object.values(structured));
  plain.dispose();
});

interface Problem {
  set: InMemoryFeatureSet;
  shape: FeatureShape;
}

/** Class k puts a strong positive activation on channel k at one random pixel, over noise of both signs. */
function separableProblem(
  seed: number,
  count: number,
  classes: number,
  labelOf?: (i: number) => number,
): Problem {
  const random = new SeededRandom(seed);
  const shape = { height: 2, width: 2, channels: 16 };
  const hw = 4;
  const labels = Int32Array.from({ length: count }, (_, i) => labelOf?.(i) ?? i % classes);
  const maps = gaussian(random, count * hw * shape.channels, 0.5);
  labels.forEach((label, i) => {
    const pixel = random.int(0, hw - 1);
    maps[(i * hw + pixel) * shape.channels + label] = 3 + random.next();
  });
  return { set: new InMemoryFeatureSet(shape, classes, labels, maps, 24), shape };
}

const TRAIN: TrainOptions = {
  epochs: 3,
  batchSize: 8,
  seed: 5,
  groups: {
    rotation: { learningRate: 0.01, weightDecay: 0 },
    weight: { learningRate: 0.05, weightDecay: 1e-4 },
    bias: { learningRate: 0.05, weightDecay: 0 },
  },
  schedule: 'cosine',
  validationFraction: 0,
  patience: 0,
  checkpointEvery: 0,
};

function makeHead(kind: 'infodisent' | 'baseline', shape: FeatureShape, classes: number): Head {
  return kind === 'infodisent'
    ? new InfoDisentHead(shape, classes, { seed: 9, foldEvery: 3 })
    : new BaselineHead(shape, classes, { seed: 9 });
}

function groupsFor(head: Head): Record<string, ParameterGroup> {
  return Object.fromEntries(Object.keys(head.trainable()).map((name) => [name, TRAIN.groups[name]!]));
}

/** Every state tensor's float32 bits, for bitwise comparison. */
function stateBits(head: Head): Record<string, number[]> {
  return Object.fromEntries(
    Object.entries(head.state()).map(([name, t]) => [
      name,
      Array.from(new Uint32Array(values(t).slice().buffer)),
    ]),
  );
}

test('W stays non-negative through 20 steps with a large learning rate (projection after every step)', async () => {
  const { set, shape } = separableProblem(31, 40, 4);
  const head = new InfoDisentHead(shape, 4, { seed: 2, foldEvery: 5 });
  let clippedSomewhere = false;
  const result = await trainHead(
    head,
    set,
    { ...TRAIN, epochs: 4, groups: { ...TRAIN.groups, weight: { learningRate: 1, weightDecay: 0 } } },
    {
      onProgress: () => {
        const w = values(head.classWeights());
        assert.ok(
          w.every((x) => x >= 0),
          'a negative class weight after a step',
        );
        if (w.some((x) => x === 0)) clippedSomewhere = true;
      },
    },
  );
  assert.equal(result.steps, 20);
  // With lr 1 the unconstrained update crosses 0 for some entries: the projection was exercised.
  assert.ok(clippedSomewhere, 'no weight was ever projected to 0');
  head.dispose();
});

test('trainHead reaches high training accuracy on a separable problem with both heads', async () => {
  const { set, shape } = separableProblem(41, 96, 4);
  for (const kind of ['infodisent', 'baseline'] as const) {
    const head = makeHead(kind, shape, 4);
    const before = await evaluateHead(head, set);
    const result = await trainHead(head, set, { ...TRAIN, epochs: 8, groups: groupsFor(head) });
    const after = await evaluateHead(head, set);
    const losses = result.history.map((h) => h.meanLoss);
    assert.ok(after.top1 >= 0.95, `${kind}: training accuracy ${after.top1} (from ${before.top1})`);
    assert.ok(losses.at(-1)! < 0.5 * losses[0]!, `${kind}: loss ${losses.join(', ')}`);
    head.dispose();
  }
});

function memorySink(): CheckpointSink & { saves: number } {
  let stored: Buffer | undefined;
  return {
    name: 'memory',
    saves: 0,
    async load() {
      return stored;
    },
    async save(data: Buffer) {
      stored = Buffer.from(data);
      this.saves++;
    },
  };
}

class Interrupt extends Error {}

async function interruptedThenResumed(
  kind: 'infodisent' | 'baseline',
  problem: Problem,
  classes: number,
  options: TrainOptions,
  stopAt: number,
): Promise<{ bits: Record<string, number[]>; resumedFrom: number | null; steps: number }> {
  const sink = memorySink();
  const checkpointSeconds = async () => {
    const { meta, tensors } = decodeTensors((await sink.load())!, sink.name);
    tf.dispose(Object.values(tensors));
    return (meta as { seconds?: number }).seconds;
  };
  const first = makeHead(kind, problem.shape, classes);
  await assert.rejects(
    trainHead(first, problem.set, options, {
      checkpoint: sink,
      onProgress: ({ step }) => {
        if (step === stopAt) throw new Interrupt(`stopped at step ${step}`);
      },
    }),
    Interrupt,
  );
  first.dispose();
  assert.ok(sink.saves > 0);
  // The interrupted run's seconds up to its checkpoint count in the resumed run's total.
  const before = await checkpointSeconds();
  assert.ok(before !== undefined && before > 0, `checkpoint seconds ${before}`);
  const second = makeHead(kind, problem.shape, classes);
  const result = await trainHead(second, problem.set, options, { checkpoint: sink });
  assert.ok(result.seconds! > before, `${result.seconds} s in all, ${before} s before the resume`);
  const bits = stateBits(second);
  second.dispose();
  return { bits, resumedFrom: result.resumedFromStep, steps: result.steps };
}

async function uninterrupted(
  kind: 'infodisent' | 'baseline',
  problem: Problem,
  classes: number,
  options: TrainOptions,
): Promise<Record<string, number[]>> {
  const head = makeHead(kind, problem.shape, classes);
  await trainHead(head, problem.set, options);
  const bits = stateBits(head);
  head.dispose();
  return bits;
}

test('a run resumed from a checkpoint ends bitwise equal to an uninterrupted one (both heads)', async () => {
  const problem = separableProblem(51, 40, 4);
  for (const kind of ['infodisent', 'baseline'] as const) {
    const head = makeHead(kind, problem.shape, 4);
    const options: TrainOptions = { ...TRAIN, groups: groupsFor(head), checkpointEvery: 4 };
    head.dispose();
    // 5 steps per epoch, 15 in all: interrupted at step 11, the last checkpoint is step 8 (mid epoch 1,
    // with InfoDisent's fold every 3 steps and the cosine schedule both in play).
    const resumed = await interruptedThenResumed(kind, problem, 4, options, 11);
    assert.equal(resumed.resumedFrom, 8, kind);
    assert.equal(resumed.steps, 15, kind);
    assert.deepEqual(resumed.bits, await uninterrupted(kind, problem, 4, options), kind);
  }
});

test('losses read back every N steps: the same history, weights and progress means as reading every step', async () => {
  const problem = separableProblem(81, 40, 4);
  // 5 steps per epoch, 15 in all: reading every 4 steps also reads at each epoch's end (5, 10, 15).
  const runs: { history: unknown; bits: Record<string, number[]>; losses: (number | null)[] }[] = [];
  for (const lossReadEvery of [1, 4]) {
    const head = makeHead('infodisent', problem.shape, 4);
    const losses: (number | null)[] = [];
    const result = await trainHead(
      head,
      problem.set,
      { ...TRAIN, lossReadEvery },
      {
        onProgress: ({ loss }) => {
          losses.push(loss);
        },
      },
    );
    runs.push({ history: result.history, bits: stateBits(head), losses });
    head.dispose();
  }
  const [everyStep, deferred] = runs as [(typeof runs)[0], (typeof runs)[0]];
  assert.deepEqual(deferred.history, everyStep.history);
  assert.deepEqual(deferred.bits, everyStep.bits);
  const perStep = everyStep.losses as number[];
  assert.ok(perStep.every((loss) => Number.isFinite(loss)));
  const readAt = deferred.losses.flatMap((loss, i) => (loss === null ? [] : [i + 1]));
  assert.deepEqual(readAt, [4, 5, 8, 10, 12, 15]);
  // Each read reports the mean loss of the steps since the previous read.
  let previous = 0;
  for (const step of readAt) {
    const steps = perStep.slice(previous, step);
    assert.equal(deferred.losses[step - 1], steps.reduce((a, b) => a + b, 0) / steps.length);
    previous = step;
  }
});

test('a diverged loss is caught at the next read-back, before a checkpoint is saved, naming its step', async () => {
  const problem = separableProblem(91, 40, 4);
  const head = makeHead('baseline', problem.shape, 4);
  const sink = memorySink();
  // An infinite learning rate makes W infinite after step 1, so step 2's loss is NaN; the next read is
  // the checkpoint's at step 3.
  const options: TrainOptions = {
    ...TRAIN,
    groups: {
      weight: { learningRate: Number.POSITIVE_INFINITY, weightDecay: 0 },
      bias: TRAIN.groups['bias']!,
    },
    checkpointEvery: 3,
    lossReadEvery: 10,
  };
  await assert.rejects(
    trainHead(head, problem.set, options, { checkpoint: sink }),
    /training diverged: loss is NaN at step 2/,
  );
  assert.equal(sink.saves, 0);
  head.dispose();
});

test('a resumed run keeps the best-validation state exactly, including an epoch with validation accuracy 0', async () => {
  // One held-out item of a class that never appears in training: validation accuracy is 0 in every
  // epoch, so the best state is the first epoch's (0 > -Infinity) and the head ends there.
  const count = 40;
  const options: TrainOptions = { ...TRAIN, validationFraction: 1 / count, checkpointEvery: 2 };
  const held = validationMask(count, options.validationFraction, options.seed);
  assert.equal(
    held.reduce((a, b) => a + b, 0),
    1,
  );
  const problem = separableProblem(61, count, 3, (i) => (held[i] ? 2 : i % 2));
  // 39 training items: 5 steps per epoch; interrupted at step 3, resumed from the step-2 checkpoint
  // (before the first validation).
  const resumed = await interruptedThenResumed('infodisent', problem, 3, options, 3);
  assert.equal(resumed.resumedFrom, 2);
  const expected = await uninterrupted('infodisent', problem, 3, options);
  assert.deepEqual(resumed.bits, expected);
});

test('the same seed gives identical weights; another seed gives different ones', async () => {
  const problem = separableProblem(71, 40, 4);
  const options = { ...TRAIN, epochs: 2 };
  const a = await uninterrupted('infodisent', problem, 4, options);
  const b = await uninterrupted('infodisent', problem, 4, options);
  assert.deepEqual(a, b);
  const c = await uninterrupted('infodisent', problem, 4, { ...options, seed: 6 });
  assert.notDeepEqual(a['weight'], c['weight']);
});
