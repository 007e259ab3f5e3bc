import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { parseTfFlags } from '../core/tf/backend';
import { InputError } from '../core/util/errors';

/**
 * What a user sets around the backend: Dawn toggles (INFODISENT_DAWN_TOGGLES) and tfjs flags
 * (INFODISENT_TF_FLAGS), each case in a fresh process (the backend registers once per process). A bad
 * entry fails at once, naming the variable; good ones reach a working backend (webgpu where an adapter
 * exists: on a CPU machine infra/lavapipe.sh provides one).
 */

const backendModule = path.join(__dirname, '..', 'core', 'tf', 'backend.js');
const tiledModule = path.join(__dirname, '..', 'core', 'method', 'matmul-webgpu.js');

function runWith(variable: 'INFODISENT_DAWN_TOGGLES' | 'INFODISENT_TF_FLAGS', value: string, script: string) {
  return spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, [variable]: value },
  });
}

test('a malformed Dawn toggle fails the webgpu backend at once, naming the variable and the value', () => {
  const run = runWith(
    'INFODISENT_DAWN_TOGGLES',
    'skip_validation,Bad-Toggle',
    `require(${JSON.stringify(backendModule)}).selectBackend('webgpu').then(
      () => process.exit(3),
      (error) => { console.log(error.name + ': ' + error.message); });`,
  );
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /InputError: INFODISENT_DAWN_TOGGLES: 'Bad-Toggle' is not a Dawn toggle name/);
});

test('with Dawn toggles set, the webgpu backend starts and the tiled product is right', (t) => {
  const run = runWith(
    'INFODISENT_DAWN_TOGGLES',
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

test('parseTfFlags reads NAME=VALUE lists and names the source and the entry it cannot read', () => {
  assert.deepEqual(parseTfFlags('A_FLAG=true, B=64,C=false,D=0.5', '--tf-flags'), {
    A_FLAG: true,
    B: 64,
    C: false,
    D: 0.5,
  });
  assert.deepEqual(parseTfFlags('', 'INFODISENT_TF_FLAGS'), {});
  assert.throws(
    () => parseTfFlags('B=64,WEBGPU_X', 'INFODISENT_TF_FLAGS'),
    (error: Error) =>
      error instanceof InputError && /INFODISENT_TF_FLAGS: 'WEBGPU_X' is not NAME=VALUE/.test(error.message),
  );
});

test('selectBackend sets the tfjs flags of INFODISENT_TF_FLAGS, and names the variable for a flag tfjs does not know', () => {
  const read = `require(${JSON.stringify(backendModule)}).selectBackend('wasm').then(
      () => console.log('tiled ' + require('@tensorflow/tfjs').env().getBool('INFODISENT_WEBGPU_TILED_MATMUL')),
      (error) => console.log(error.name + ': ' + error.message));`;
  const set = runWith('INFODISENT_TF_FLAGS', 'INFODISENT_WEBGPU_TILED_MATMUL=true', read);
  assert.equal(set.status, 0, set.stderr);
  assert.match(set.stdout, /tiled true/);
  const unknown = runWith('INFODISENT_TF_FLAGS', 'NO_SUCH_FLAG=1', read);
  assert.equal(unknown.status, 0, unknown.stderr);
  assert.match(unknown.stdout, /InputError: INFODISENT_TF_FLAGS: .*NO_SUCH_FLAG/);
});
