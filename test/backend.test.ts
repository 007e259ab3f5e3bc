import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

/**
 * Dawn toggles for the webgpu backend (INFODISENT_DAWN_TOGGLES), each case in a fresh process: the
 * backend registers once per process. A bad name fails at once, naming the variable; good ones reach a
 * working backend (where an adapter exists: on a CPU machine infra/lavapipe.sh provides one).
 */

const backendModule = path.join(__dirname, '..', 'core', 'tf', 'backend.js');
const tiledModule = path.join(__dirname, '..', 'core', 'method', 'matmul-webgpu.js');

function runWithToggles(toggles: string, script: string) {
  return spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, INFODISENT_DAWN_TOGGLES: toggles },
  });
}

test('a malformed Dawn toggle fails the webgpu backend at once, naming the variable and the value', () => {
  const run = runWithToggles(
    'skip_validation,Bad-Toggle',
    `require(${JSON.stringify(backendModule)}).selectBackend('webgpu').then(
      () => process.exit(3),
      (error) => { console.log(error.name + ': ' + error.message); });`,
  );
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /InputError: INFODISENT_DAWN_TOGGLES: 'Bad-Toggle' is not a Dawn toggle name/);
});

test('with Dawn toggles set, the webgpu backend starts and the tiled product is right', (t) => {
  const run = runWithToggles(
    'skip_validation,disable_robustness,disable_workgroup_init',
    `const tf = require('@tensorflow/tfjs');
    require(${JSON.stringify(backendModule)}).selectBackend('webgpu').then(async () => {
      const a = tf.randomNormal([200, 70], 0, 1, 'float32', 1);
      const b = tf.randomNormal([70, 130], 0, 1, 'float32', 2);
      const { tiledMatMulWebgpu } = require(${JSON.stringify(tiledModule)});
      const product = await tiledMatMulWebgpu(a, b, false, false, { side: 64, depth: 16 }).data();
      const expected = await tf.matMul(a, b).data();
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(product[i] - expected[i]));
      console.log('max difference ' + worst);
    }, (error) => { console.log('unavailable: ' + error.message); });`,
  );
  assert.equal(run.status, 0, run.stderr);
  if (run.stdout.startsWith('unavailable')) return t.skip(run.stdout.trim());
  const difference = Number(/max difference (\S+)/.exec(run.stdout)?.[1]);
  assert.ok(difference < 1e-4, run.stdout);
});
