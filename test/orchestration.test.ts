import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { keysInHistory } from '../client/running-work';
import { loadSweepFile, type Sweep } from '../core/config/experiment';
import { decodeTensors } from '../core/method/tensor-io';
import type { SweepNotification } from '../core/pipeline/notify';
import { outcomeKeys } from '../core/pipeline/results';
import type { TrainedHeadRef } from '../core/pipeline/stages';
import { trainHeadStage } from '../core/pipeline/stages';
import { putJson } from '../core/store/artifact-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { type LocalTemporal, startLocalTemporal } from '../infra/dev-server';
import { repoRoot } from '../infra/paths';
import { installRuntime } from '../worker/runtime';
import { DEFAULT_TASK_QUEUES } from '../workflows/progress';
import { configurationWorkflowId, sweepWorkflow } from '../workflows/sweep';
import { runCli } from './support/cli';
import { writeFeatureSet } from './support/prune-fixture';
import { startWebhookServer, type WebhookServer } from './support/webhook';

// Real worker processes against a real Temporal dev server: a worker killed in the middle of InfoDisent
// training, and a schedule that fires a re-evaluation of the same sweep.
let home: string;
let temporal: LocalTemporal;
let sweep: Sweep;
let webhook: WebhookServer;
const workers: ChildProcess[] = [];

function startWorker(): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      path.join(repoRoot(), 'dist', 'client', 'main.js'),
      'worker',
      '--address',
      temporal.address,
      '--store',
      path.join(home, 'store'),
      '--data-dir',
      path.join(home, 'datasets'),
      '--backend',
      'wasm',
      '--queues',
      'gpu,cpu',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      // The CPU queue's worker posts each finished sweep to the test's webhook.
      env: { ...process.env, INFODISENT_NOTIFY_URL: `${webhook.url}/hooks/sweeps-token` },
    },
  );
  workers.push(child);
  return child;
}

/** The CLI against this test's Temporal; its stdout. */
async function cliOutput(...args: string[]): Promise<string> {
  const outcome = await runCli([...args, '--address', temporal.address]);
  assert.equal(outcome.code, 0, outcome.stderr);
  return outcome.stdout;
}

async function findCheckpoint(): Promise<string | undefined> {
  const root = path.join(home, 'store', 'heads', 'infodisent');
  const heads = await readdir(root).catch(() => [] as string[]);
  for (const head of heads) {
    if ((await readdir(path.join(root, head))).includes('checkpoint.bin')) return head;
  }
  return undefined;
}

before(async () => {
  installRuntime();
  webhook = await startWebhookServer();
  home = await mkdtemp(path.join(os.tmpdir(), 'infodisent-resume-'));
  temporal = await startLocalTemporal({ stateDir: home, persistent: false });
  sweep = await loadSweepFile(path.join(repoRoot(), 'experiments', 'tiny.json'));
});

after(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  await temporal?.stop();
  await webhook?.close();
  await rm(home, { recursive: true, force: true });
});

test('a worker killed during training: a new worker resumes from the checkpoint, same weights', {
  timeout: 900_000,
}, async () => {
  const { client } = temporal;
  const first = startWorker();
  const handle = await client.workflow.start(sweepWorkflow, {
    workflowId: 'sweep-resume-test',
    taskQueue: DEFAULT_TASK_QUEUES.cpu,
    args: [{ sweep, queues: DEFAULT_TASK_QUEUES, parallelism: 1, heartbeatTimeout: '10s' }],
  });
  let checkpointed: string | undefined;
  while (!checkpointed) {
    assert.equal(first.exitCode, null, 'the first worker exited before training checkpointed');
    await new Promise((resolve) => setTimeout(resolve, 200));
    checkpointed = await findCheckpoint();
  }
  first.kill('SIGKILL');

  // A prune while the sweep is cut off keeps what its history shows it resolved (both splits' features, the
  // trained baseline) and the checkpoint of its head in training; it deletes what nothing uses.
  const store = new LocalArtifactStore(path.join(home, 'store'));
  await writeFeatureSet(store, 'features/bb/old', 6, true);
  await putJson(store, 'summaries/old-b.json', {});
  const pruned = JSON.parse(
    await cliOutput('store', 'prune', '--store', store.root, '--yes', '--incomplete', '--json'),
  ) as { runningWorkflows: string[]; remove: { key: string }[]; keep: { key: string; reason: string }[] };
  const configurationId = configurationWorkflowId(handle.workflowId, sweep.configurations[0]!.name);
  assert.deepEqual(pruned.runningWorkflows.sort(), [handle.workflowId, configurationId]);
  assert.deepEqual(pruned.remove.map((a) => a.key).sort(), ['features/bb/old', 'summaries/old-b.json']);
  const kept = pruned.keep.map((a) => [a.key.replace(/[^/]+$/, '*'), a.reason]).sort();
  assert.deepEqual(kept, [
    ['features/nsfwjs-mobilenet-v2/*', 'used by a running sweep'],
    ['features/nsfwjs-mobilenet-v2/*', 'used by a running sweep'],
    ['heads/baseline/*', 'used by a running sweep'],
    ['heads/infodisent/*', 'incomplete, and 2 sweep workflows are running: it may be theirs'],
  ]);

  startWorker();
  const output = await handle.result();
  assert.deepEqual(output.results.failed, []);
  // `sweep list` counts its finished configurations from the memo the sweep keeps (visibility lags a little).
  let listed: { workflowId: string; status: string; done: number | null; failed: number | null }[] = [];
  for (let attempt = 0; attempt < 20; attempt++) {
    listed = (JSON.parse(await cliOutput('sweep', 'list', '--json')) as { sweeps: typeof listed }).sweeps;
    if (listed.some((s) => s.workflowId === handle.workflowId && s.status === 'COMPLETED')) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const entry = listed.find((s) => s.workflowId === handle.workflowId);
  assert.deepEqual([entry?.status, entry?.done, entry?.failed], ['COMPLETED', 1, 0]);
  // The finished sweep was posted to the webhook, once, with its heads' figures and where its report is.
  assert.equal(webhook.posts.length, 1);
  const posted = webhook.posts[0]!.body as SweepNotification;
  assert.equal(webhook.posts[0]!.path, '/hooks/sweeps-token');
  assert.equal(posted.sweep, sweep.name);
  assert.equal(posted.report, `file://${path.join(home, 'store')}/${output.reportKey}`);
  assert.deepEqual(
    posted.completed[0]!.heads.map((head) => head.top1),
    output.results.completed[0]!.heads.map((head) => head.evaluation.top1),
  );
  // The sweep's own history names everything its finished configuration read.
  assert.deepEqual(
    new Set(keysInHistory((await handle.fetchHistory()).events ?? [])),
    new Set(outcomeKeys(output.results.completed[0]!)),
  );
  const infodisent = output.results.completed[0]!.heads.find((h) => h.kind === 'infodisent')!;
  assert.equal(path.basename(infodisent.headKey), checkpointed);
  assert.ok(infodisent.training.resumedFromStep !== null && infodisent.training.resumedFromStep > 0);

  // The same training, uninterrupted, from the same features in a fresh store.
  const freshStore = path.join(home, 'fresh');
  await cp(path.join(home, 'store', 'features'), path.join(freshStore, 'features'), { recursive: true });
  const configuration = sweep.configurations[0]!;
  const trainKey = output.results.completed[0]!.features.train;
  const features = {
    key: trainKey,
    split: 'train',
    count: 0,
    reused: true,
    reusedShards: 0,
    shape: { height: 7, width: 7, channels: 1280 },
  } as const;
  const uninterrupted: TrainedHeadRef = await trainHeadStage(
    { store: new LocalArtifactStore(freshStore), dataDir: path.join(home, 'datasets') },
    configuration,
    'infodisent',
    { ...features },
  );
  assert.equal(uninterrupted.key, infodisent.headKey);
  assert.equal(uninterrupted.result.resumedFromStep, null);
  const resumed = decodeTensors(
    (await new LocalArtifactStore(path.join(home, 'store')).get(`${infodisent.headKey}/head.bin`))!,
    'resumed',
  );
  const reference = decodeTensors(
    (await new LocalArtifactStore(freshStore).get(`${uninterrupted.key}/head.bin`))!,
    'reference',
  );
  for (const [name, tensor] of Object.entries(reference.tensors)) {
    assert.deepEqual(
      resumed.tensors[name]!.dataSync(),
      tensor.dataSync(),
      `${name} differs from the uninterrupted run`,
    );
  }
});

test('a schedule fires a re-evaluation, which a worker runs from the cached features and heads', {
  timeout: 600_000,
}, async () => {
  const { client } = temporal;
  const tiny = path.join(repoRoot(), 'experiments', 'tiny.json');
  const created = await cliOutput(
    'schedule',
    'create',
    tiny,
    '--every',
    '3s',
    '--id',
    'reevaluate-tiny',
    '--json',
  );
  assert.equal((JSON.parse(created) as { scheduleId: string }).scheduleId, 'reevaluate-tiny');
  const schedule = client.schedule.getHandle('reevaluate-tiny');
  let fired: string | undefined;
  while (!fired) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    fired = (await schedule.describe()).info.recentActions[0]?.action.workflow.workflowId;
  }
  await schedule.pause('test done');
  const output = await client.workflow.getHandle<typeof sweepWorkflow>(fired).result();
  assert.deepEqual(output.results.failed, []);
  const outcome = output.results.completed[0]!;
  assert.equal(outcome.features.reused, true);
  assert.ok(outcome.heads.every((head) => head.reusedHead));
  // The re-evaluation was posted too, after the first sweep's: from the same heads, so nothing changed since
  // the run before it.
  const reevaluation = webhook.posts
    .map((post) => post.body as SweepNotification)
    .find((posted) => posted.finishedAt === output.results.finishedAt);
  assert.ok(reevaluation, 'the re-evaluation was posted');
  assert.deepEqual(reevaluation.sincePrevious?.changed, []);
  assert.match(reevaluation.text, /\nNo head's predictions changed since the previous run \(/);
  await schedule.delete();
});
