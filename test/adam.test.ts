import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Adam, type ParameterGroup } from '../core/method/adam';
import { crossEntropyClassMajor } from '../core/method/cross-entropy';
import { sparsePoolGradientWebgpu, sparsePoolWebgpu } from '../core/method/pooling-webgpu';
import { denseRotationGradient } from '../core/method/rotation-gradient';
import { type BackendName, selectBackend } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { agreementWithWasm } from './support/backend-agreement';
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
          ['m', adam.firstMoments[name]!, expected.m[name]!],
          ['v', adam.secondMoments[name]!, expected.v[name]!],
        ];
        for (const [what, tensor, want] of checks) {
          // Float32 state against float64: relative 1e-6 of each quantity's scale.
          const error = relativeError(await read(tensor), want);
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
    const next = adam.update(params, gradients, GROUPS, 0.5 + 0.5 * Math.cos(step));
    tf.dispose([...Object.values(params), ...Object.values(gradients)]);
    params = next;
    // No tensor is left behind: from step 2 on, the same number are alive after every update.
    if (step === 2) live = tf.memory().numTensors;
    if (step > 2) assert.equal(tf.memory().numTensors, live, `tensors leaked at step ${step}`);
  }
  const out: Record<string, Float32Array> = {};
  for (const name of Object.keys(SHAPES)) {
    out[`${name}`] = await read(params[name]!);
    out[`m.${name}`] = await read(adam.firstMoments[name]!);
    out[`v.${name}`] = await read(adam.secondMoments[name]!);
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
  // The fused path runs no tfjs kernel at all, only its own three dispatches per parameter.
  const fusedKernels = await kernelsPerUpdate();
  await selectBackend('wasm');
  assert.equal(fusedKernels, 0);
  console.log(
    `one update of 3 parameters: ${opKernels} tfjs kernels op by op, ${3 * Object.keys(SHAPES).length} fused dispatches`,
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
  console.log(
    `fused webgpu vs op-by-op wasm AdamW after ${STEPS} steps, relative: ${Object.entries(errors)
      .map(([name, e]) => `${name} ${e.toExponential(2)}`)
      .join(', ')}`,
  );
});

test('three InfoDisent training steps on webgpu (fused pooling, gradient and AdamW, losses left on the device) agree with wasm', async (t) => {
  if (!(await useBackend(t, 'webgpu'))) return;
  for (const foldEvery of [1, 2]) {
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

test('the fused webgpu pooling and its gradient equal the op-by-op pooling and one-hot gradient', async (t) => {
  if (!(await useBackend(t, 'webgpu'))) return;
  const random = new SeededRandom(5);
  const [c, n, hw] = [48, 6, 49];
  const values = gaussian(random, c * n * hw);
  // A channel and image whose pixels are all positive (no min branch), one all negative (no max branch),
  // and one with a tie for the max (the first pixel wins).
  for (let q = 0; q < hw; q++) {
    values[q] = Math.abs(values[q]!) + 0.1;
    values[hw + q] = -Math.abs(values[hw + q]!) - 0.1;
  }
  values[2 * hw + 3] = values[2 * hw + 7] = 9;
  const zT = tf.tensor2d(values, [c, n * hw]);
  const gradPooled = tf.tensor2d(gaussian(random, c * n), [c, n]);
  const fusedPool = await read(sparsePoolWebgpu(zT, n, hw));
  const fusedGrad = await read(sparsePoolGradientWebgpu(zT, gradPooled, hw));
  const byImage = zT.reshape([c, n, hw]);
  const maxima = tf.max(byImage, 2);
  const minima = tf.min(byImage, 2);
  const pooled = await read(tf.add(tf.relu(maxima), tf.minimum(minima, 0)));
  const extremes = {
    argmax: tf.argMax(byImage, 2) as tf.Tensor2D,
    argmin: tf.argMin(byImage, 2) as tf.Tensor2D,
    gradMax: tf.mul(gradPooled, tf.greater(maxima, 0).toFloat()) as tf.Tensor2D,
    gradMin: tf.mul(gradPooled, tf.less(minima, 0).toFloat()) as tf.Tensor2D,
  };
  // dL/dZ^T of the one-hot path: its product with the identity.
  const gradZT = await read(denseRotationGradient(extremes, tf.eye(n * hw) as tf.Tensor2D));
  assert.deepEqual(fusedPool, pooled);
  // tfjs' webgpu argMax breaks the tie otherwise: compare the rest, then the tied cell by hand.
  const tied = [2 * hw, 3 * hw] as const;
  assert.deepEqual(
    [...fusedGrad.subarray(0, tied[0]), ...fusedGrad.subarray(tied[1])],
    [...gradZT.subarray(0, tied[0]), ...gradZT.subarray(tied[1])],
  );
  const cell = values.subarray(2 * hw, 3 * hw);
  const g = (await read(gradPooled))[2]!;
  const lowest = cell.indexOf(Math.min(...cell));
  const expectedTied = Float32Array.from(cell, (_, q) => (q === 3 ? g : q === lowest ? g : 0));
  assert.deepEqual(fusedGrad.subarray(...tied), expectedTied);
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
