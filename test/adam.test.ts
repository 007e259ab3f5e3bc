import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Adam, type ParameterGroup } from '../core/method/adam';
import { classLogitsWebgpu, classWeightGradientWebgpu } from '../core/method/class-layer-webgpu';
import { crossEntropyClassMajor } from '../core/method/cross-entropy';
import { InfoDisentHead } from '../core/method/infodisent-head';
import { extremeRowsGradientWebgpu, sparsePoolWebgpu } from '../core/method/pooling-webgpu';
import { optimiserStep } from '../core/method/train';
import { countDispatches } from '../core/method/webgpu-program';
import { type BackendName, selectBackend } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { agreementWithWasm, HEAD_GROUPS } from './support/backend-agreement';
import { gaussian, relativeError } from './support/numeric';
import { runPythonReference } from './support/python';

/**
 * AdamW against PyTorch's (float64, reference/head_reference.py) on every backend that starts here: the
 * op-by-op update on wasm, the fused kernel on webgpu (where Dawn finds a Vulkan driver; skipped
 * elsewhere). Then the fused kernel against the op-by-op update over many steps, and whole InfoDisent
 * training steps on webgpu against wasm. On a CPU machine, infra/lavapipe.sh provides the Vulkan driver.
 */

/** Selects `name` for the test, or skips it where that backend cannot start on this machine. */
async function useBackend(t: TestContext, name: BackendName): Promise<boolean> {
  try {
    await selectBackend(name);
    return true;
  } catch (error) {
    t.skip(`${name} unavailable: ${(error as Error).message}`);
    return false;
  }
}

async function read(tensor: tf.Tensor): Promise<Float32Array> {
  return (await tensor.data()) as Float32Array;
}

const REFERENCE_SHAPES: Record<string, number[]> = { first: [5, 3], second: [4, 1] };
const REFERENCE_GROUPS: Record<string, ParameterGroup> = {
  first: { learningRate: 0.03, weightDecay: 0.1 },
  second: { learningRate: 0.2, weightDecay: 0 },
};

for (const backend of ['wasm', 'webgpu'] as const) {
  test(`Adam on ${backend} equals PyTorch AdamW over several steps: moments, bias correction, per-group lr and decay, lr scale`, async (t) => {
    if (!(await useBackend(t, backend))) return;
    const random = new SeededRandom(77);
    const shapes = REFERENCE_SHAPES;
    const groups = REFERENCE_GROUPS;
    const size = (name: string) => shapes[name]!.reduce((a, b) => a * b, 1);
    const initial = Object.fromEntries(
      Object.keys(shapes).map((name) => [name, gaussian(random, size(name))]),
    );
    const scales = [1, 0.5, 0.25, 1, 0.8];
    const grads = scales.map((_, step) =>
      Object.fromEntries(
        Object.keys(shapes).map((name) => {
          const g = gaussian(random, size(name), 10 ** (step - 2));
          g[0] = 0; // a zero gradient: the update is only the decay and the running moments
          return [name, g];
        }),
      ),
    );
    const ref = runPythonReference<{
      steps: { params: Record<string, number[]>; m: Record<string, number[]>; v: Record<string, number[]> }[];
    }>('head_reference.py', {
      task: 'adam',
      params: Object.fromEntries(Object.entries(initial).map(([name, p]) => [name, Array.from(p)])),
      grads: grads.map((g) =>
        Object.fromEntries(Object.entries(g).map(([name, x]) => [name, Array.from(x)])),
      ),
      lr_scales: scales,
      groups: Object.fromEntries(
        Object.entries(groups).map(([name, g]) => [
          name,
          { lr: g.learningRate, weight_decay: g.weightDecay },
        ]),
      ),
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
    });
    const adam = new Adam();
    let params: Record<string, tf.Tensor> = Object.fromEntries(
      Object.entries(initial).map(([name, p]) => [name, tf.tensor(p, shapes[name])]),
    );
    let worst = 0;
    for (const [step, scale] of scales.entries()) {
      const gradients = Object.fromEntries(
        Object.entries(grads[step]!).map(([name, g]) => [name, tf.tensor(g, shapes[name])]),
      );
      const next = adam.update(params, gradients, groups, scale);
      tf.dispose([...Object.values(params), ...Object.values(gradients)]);
      params = next;
      const expected = ref.steps[step]!;
      for (const name of Object.keys(shapes)) {
        const checks: [string, tf.Tensor, number[]][] = [
          ['param', params[name]!, expected.params[name]!],
          ['m', adam.moment(name, 'm')!, expected.m[name]!],
          ['v', adam.moment(name, 'v')!, expected.v[name]!],
        ];
        for (const [what, tensor, want] of checks) {
          // Float32 state against float64: relative 1e-6 of each quantity's scale.
          const error = relativeError(await read(tensor), want);
          if (what !== 'param') tensor.dispose();
          worst = Math.max(worst, error);
          assert.ok(error < 1e-6, `step ${step + 1} ${name}.${what}: ${error}`);
        }
      }
    }
    assert.equal(adam.step, scales.length);
    tf.dispose(Object.values(params));
    adam.dispose();
    console.log(
      `Adam (${backend}) vs float64 AdamW over ${scales.length} steps: worst relative error ${worst.toExponential(2)}`,
    );
  });
}

/** Parameters, moments and gradients of several magnitudes, sizes that no workgroup divides. */
const SHAPES: Record<string, number[]> = { rotation: [257, 257], weight: [200, 257], bias: [200, 1] };
const GROUPS: Record<string, ParameterGroup> = {
  rotation: { learningRate: 5e-4, weightDecay: 0 },
  weight: { learningRate: 1e-2, weightDecay: 1e-4 },
  bias: { learningRate: 1e-2, weightDecay: 0 },
};
const STEPS = 20;

/** Parameters and moments after STEPS updates with seeded gradients, on the selected backend. */
async function trajectory(): Promise<Record<string, Float32Array>> {
  const random = new SeededRandom(5);
  const adam = new Adam();
  let params: Record<string, tf.Tensor> = Object.fromEntries(
    Object.entries(SHAPES).map(([name, shape]) => [
      name,
      tf.tensor(gaussian(random, shape[0]! * shape[1]!), shape),
    ]),
  );
  let live = 0;
  for (let step = 1; step <= STEPS; step++) {
    const gradients = Object.fromEntries(
      Object.entries(SHAPES).map(([name, shape]) => {
        const g = gaussian(random, shape[0]! * shape[1]!, 10 ** ((step % 5) - 3));
        g[step] = 0;
        return [name, tf.tensor(g, shape)];
      }),
    );
    // The class weights projected onto x >= 0, as the InfoDisent head asks.
    const next = adam.update(params, gradients, GROUPS, 0.5 + 0.5 * Math.cos(step), ['weight']);
    tf.dispose([...Object.values(params), ...Object.values(gradients)]);
    params = next;
    // No tensor is left behind: from step 2 on, the same number are alive after every update.
    if (step === 2) live = tf.memory().numTensors;
    if (step > 2) assert.equal(tf.memory().numTensors, live, `tensors leaked at step ${step}`);
  }
  const out: Record<string, Float32Array> = {};
  for (const name of Object.keys(SHAPES)) {
    out[`${name}`] = await read(params[name]!);
    for (const which of ['m', 'v'] as const) {
      const moment = adam.moment(name, which)!;
      out[`${which}.${name}`] = await read(moment);
      moment.dispose();
    }
  }
  tf.dispose(Object.values(params));
  adam.dispose();
  return out;
}

/** tfjs kernels one update of SHAPES runs (after the first step, whose zero moments add a few). */
async function kernelsPerUpdate(): Promise<number> {
  const adam = new Adam();
  const params = Object.fromEntries(Object.entries(SHAPES).map(([name, shape]) => [name, tf.ones(shape)]));
  tf.dispose(Object.values(adam.update(params, params, GROUPS)));
  const profile = await tf.profile(() => {
    tf.dispose(Object.values(adam.update(params, params, GROUPS)));
  });
  tf.dispose(Object.values(params));
  adam.dispose();
  return profile.kernels.length;
}

test('the fused webgpu AdamW kernel agrees with the op-by-op update on wasm over 20 steps', async (t) => {
  await selectBackend('wasm');
  const ops = await trajectory();
  const opKernels = await kernelsPerUpdate();
  if (!(await useBackend(t, 'webgpu'))) return;
  const fused = await trajectory();
  // The fused path runs no tfjs kernel at all, only its own dispatches: one for the moments, one a parameter.
  const fusedKernels = await kernelsPerUpdate();
  await selectBackend('wasm');
  assert.equal(fusedKernels, 0);
  console.log(
    `one update of 3 parameters: ${opKernels} tfjs kernels op by op, ${1 + Object.keys(SHAPES).length} fused dispatches`,
  );
  /*
   * The kernel runs the same float32 operations in the same order; WGSL allows sqrt and division a few ulp
   * and the compiler may contract a multiply-add, so each result may differ by a few float32 roundings of
   * its scale, carried through 20 steps. Tolerance: 1e-6 of each quantity's largest entry.
   */
  const errors = Object.fromEntries(
    Object.keys(ops).map((name) => [name, relativeError(fused[name]!, ops[name]!)] as const),
  );
  for (const [name, error] of Object.entries(errors)) assert.ok(error < 1e-6, `${name}: ${error}`);
  // Gaussian initial weights and gradients of either sign: the projection holds some of them at 0.
  for (const weight of [ops.weight!, fused.weight!])
    assert.ok(weight.every((value) => value >= 0) && weight.includes(0));
  console.log(
    `fused webgpu vs op-by-op wasm AdamW after ${STEPS} steps, relative: ${Object.entries(errors)
      .map(([name, e]) => `${name} ${e.toExponential(2)}`)
      .join(', ')}`,
  );
});

for (const backend of ['wasm', 'webgpu'] as const)
  test(`Adam on ${backend} restored from its checkpoint tensors continues bit for bit`, async (t) => {
    if (!(await useBackend(t, backend))) return;
    const random = new SeededRandom(9);
    const gradientsAt = Array.from({ length: 5 }, () =>
      Object.fromEntries(
        Object.entries(SHAPES).map(([name, shape]) => [name, gaussian(random, shape[0]! * shape[1]!)]),
      ),
    );
    const initial = Object.fromEntries(
      Object.entries(SHAPES).map(([name, shape]) => [name, gaussian(random, shape[0]! * shape[1]!)]),
    );
    const run = async (adam: Adam, params: Record<string, tf.Tensor>, from: number, to: number) => {
      for (let step = from; step < to; step++) {
        const gradients = Object.fromEntries(
          Object.entries(SHAPES).map(([name, shape]) => [name, tf.tensor(gradientsAt[step]![name]!, shape)]),
        );
        const next = adam.update(params, gradients, GROUPS, 1, ['weight']);
        tf.dispose([...Object.values(params), ...Object.values(gradients)]);
        params = next;
      }
      return params;
    };
    const start = () =>
      Object.fromEntries(
        Object.entries(SHAPES).map(([name, shape]) => [name, tf.tensor(initial[name]!, shape)]),
      );
    const whole = new Adam();
    const straight = await run(whole, start(), 0, 5);
    const first = new Adam();
    const halfway = await run(first, start(), 0, 3);
    const resumed = new Adam();
    resumed.restore(first.step, first.checkpointTensors());
    const rest = await run(resumed, halfway, 3, 5);
    for (const name of Object.keys(SHAPES)) {
      assert.deepEqual(await read(rest[name]!), await read(straight[name]!), name);
      for (const which of ['m', 'v'] as const) {
        const [a, b] = [resumed.moment(name, which)!, whole.moment(name, which)!];
        assert.deepEqual(await read(a), await read(b), `${which}.${name}`);
        tf.dispose([a, b]);
      }
    }
    tf.dispose([...Object.values(straight), ...Object.values(rest)]);
    for (const adam of [whole, first, resumed]) adam.dispose();
    await selectBackend('wasm');
  });

test('three InfoDisent training steps on webgpu (fused pooling, gradient and AdamW, losses left on the device) agree with wasm', async (t) => {
  if (!(await useBackend(t, 'webgpu'))) return;
  // Folding every step, every second step, and never (the exact expm and its reverse pass every step).
  for (const foldEvery of [1, 2, 0]) {
    const relative = await agreementWithWasm('webgpu', { channels: 64, batch: 16, classes: 10, foldEvery });
    await selectBackend('wasm');
    // The backends may take different expm plans (the norm bound differs) and sum in other orders: float32
    // rounding of the weights and U, carried through 3 steps (2.9e-6 measured on an H200 at C = 256).
    assert.ok(relative < 2e-5, `webgpu vs wasm after 3 steps, folding every ${foldEvery}: ${relative}`);
    console.log(
      `InfoDisent head, webgpu vs wasm after 3 steps folding every ${foldEvery}: ${relative.toExponential(2)} relative`,
    );
  }
});

test('a folded InfoDisent step on webgpu takes at most 21 dispatches, the expm included', async (t) => {
  if (!(await useBackend(t, 'webgpu'))) return;
  const [c, n, classes] = [64, 8, 10];
  const random = new SeededRandom(3);
  const maps = gaussian(random, n * 49 * c);
  const labels = Int32Array.from({ length: n }, () => random.int(0, classes - 1));
  const head = new InfoDisentHead({ height: 7, width: 7, channels: c }, classes, { seed: 1, foldEvery: 1 });
  const adam = new Adam();
  const step = async (index: number) =>
    (await optimiserStep(head, adam, { maps, labels }, HEAD_GROUPS, index)).dispose();
  await step(1);
  const dispatches = await countDispatches(() => step(2));
  head.dispose();
  adam.dispose();
  await selectBackend('wasm');
  // 9 for the forward and backward passes, 4 for AdamW, the rest the fold (its expm plan varies with ||S||);
  // a step took 37 at the end of session 8, on an H200 about 0.25 ms each.
  console.log(`one folded InfoDisent step on webgpu: ${dispatches} dispatches`);
  assert.ok(dispatches <= 21, `${dispatches} dispatches`);
});

/**
 * The head's webgpu step kernels against a float64 reference written out here: the packed sparse pooling
 * (values and surviving extremes, ties to the first pixel), the class layer's logits and dL/dW read from it in
 * place, and dL/dU as the sparse sum over the extremes' rows with dL/dp = W^T dL/dlogits.
 */
test('the fused webgpu pooling, class layer and sparse rotation gradient equal a float64 reference', async (t) => {
  if (!(await useBackend(t, 'webgpu'))) return;
  const random = new SeededRandom(5);
  // C above one workgroup's 256 columns and n above its chunk of 64 images, so both wrap.
  const [c, n, hw, classes] = [300, 70, 49, 11];
  const values = gaussian(random, n * hw * c);
  const at = (b: number, q: number, channel: number) => (b * hw + q) * c + channel;
  // Channel 0 of image 0 all positive (no min branch), channel 1 all negative (no max branch), channel 2 a
  // tie for the max (the first pixel wins).
  for (let q = 0; q < hw; q++) {
    values[at(0, q, 0)] = Math.abs(values[at(0, q, 0)]!) + 0.1;
    values[at(0, q, 1)] = -Math.abs(values[at(0, q, 1)]!) - 0.1;
  }
  values[at(0, 3, 2)] = values[at(0, 7, 2)] = 9;
  const weight = Float32Array.from(gaussian(random, classes * c), Math.abs);
  const bias = gaussian(random, classes);
  const gradLogits = gaussian(random, classes * n);
  const rows = gaussian(random, n * hw * c);

  const z = tf.tensor2d(values, [n * hw, c]);
  const pooling = sparsePoolWebgpu(z, n, hw);
  const packed = await read(pooling);
  const logits = await read(
    classLogitsWebgpu(tf.tensor2d(weight, [classes, c]), pooling, tf.tensor2d(bias, [classes, 1])),
  );
  const gradWeight = await read(classWeightGradientWebgpu(tf.tensor2d(gradLogits, [classes, n]), pooling));
  const gradU = await read(
    extremeRowsGradientWebgpu(
      pooling,
      tf.tensor2d(weight, [classes, c]),
      tf.tensor2d(gradLogits, [classes, n]),
      tf.tensor2d(rows, [n * hw, c]),
      hw,
    ),
  );
  await selectBackend('wasm');

  const pooled = new Float64Array(c * n);
  const high = new Int32Array(c * n);
  const low = new Int32Array(c * n);
  for (let channel = 0; channel < c; channel++)
    for (let b = 0; b < n; b++) {
      let [hi, lo] = [0, 0];
      for (let q = 1; q < hw; q++) {
        if (values[at(b, q, channel)]! > values[at(b, hi, channel)]!) hi = q;
        if (values[at(b, q, channel)]! < values[at(b, lo, channel)]!) lo = q;
      }
      const [max, min] = [values[at(b, hi, channel)]!, values[at(b, lo, channel)]!];
      pooled[channel * n + b] = Math.fround(Math.max(max, 0) + Math.min(min, 0));
      high[channel * n + b] = max > 0 ? hi : -1;
      low[channel * n + b] = min < 0 ? lo : -1;
    }
  assert.deepEqual(Array.from(packed.subarray(0, c * n)), Array.from(pooled));
  assert.deepEqual(Array.from(packed.subarray(c * n, 2 * c * n)), Array.from(high));
  assert.deepEqual(Array.from(packed.subarray(2 * c * n)), Array.from(low));
  // The cells above: no min branch, no max branch, and the first of the tied pixels.
  assert.deepEqual([low[0], high[n], high[2 * n]], [-1, -1, 3]);

  const expectedLogits = new Float64Array(classes * n);
  const expectedGradWeight = new Float64Array(classes * c);
  const gradPooled = new Float64Array(c * n);
  for (let k = 0; k < classes; k++)
    for (let channel = 0; channel < c; channel++)
      for (let b = 0; b < n; b++) {
        expectedLogits[k * n + b]! += weight[k * c + channel]! * pooled[channel * n + b]!;
        expectedGradWeight[k * c + channel]! += gradLogits[k * n + b]! * pooled[channel * n + b]!;
        gradPooled[channel * n + b]! += weight[k * c + channel]! * gradLogits[k * n + b]!;
      }
  for (let k = 0; k < classes; k++) for (let b = 0; b < n; b++) expectedLogits[k * n + b]! += bias[k]!;
  const expectedGradU = new Float64Array(c * c);
  for (let channel = 0; channel < c; channel++)
    for (let b = 0; b < n; b++)
      for (const pixel of [high[channel * n + b]!, low[channel * n + b]!]) {
        if (pixel < 0) continue;
        for (let j = 0; j < c; j++)
          expectedGradU[channel * c + j]! += gradPooled[channel * n + b]! * rows[at(b, pixel, j)]!;
      }
  // float32 sums of C (logits), n (dL/dW) and K then 2n (dL/dU) products, in order: well inside 1e-5 of the
  // largest entry.
  for (const [name, actual, expected] of [
    ['logits', logits, expectedLogits],
    ['dL/dW', gradWeight, expectedGradWeight],
    ['dL/dU', gradU, expectedGradU],
  ] as const) {
    const error = relativeError(actual, expected);
    assert.ok(error < 1e-5, `${name}: ${error}`);
  }
});

test('the fused webgpu cross-entropy equals the op-by-op one on wasm', async (t) => {
  const random = new SeededRandom(8);
  const [classes, n] = [37, 19];
  const logits = gaussian(random, classes * n, 4);
  const labels = Int32Array.from({ length: n }, () => random.int(0, classes - 1));
  const evaluate = async () => {
    const { loss, gradLogitsT } = crossEntropyClassMajor(tf.tensor2d(logits, [classes, n]), labels);
    return { loss: (await read(loss))[0]!, gradient: await read(gradLogitsT) };
  };
  await selectBackend('wasm');
  const expected = await evaluate();
  if (!(await useBackend(t, 'webgpu'))) return;
  const fused = await evaluate();
  await selectBackend('wasm');
  assert.ok(relativeError(fused.gradient, expected.gradient) < 1e-6);
  assert.ok(Math.abs(fused.loss - expected.loss) < 1e-6 * expected.loss, `${fused.loss} vs ${expected.loss}`);
});
