import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type WorkflowHandle, WorkflowNotFoundError } from '@temporalio/client';
import { msToNumber } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parseSweep } from '../core/config/experiment';
import type { SweepResults } from '../core/pipeline/results';
import { openStore } from '../core/store/open-store';
import type { S3ArtifactStore } from '../core/store/s3-store';
import { freePort, startTimeSkippingTemporal } from '../infra/dev-server';
import { installRuntime } from '../worker/runtime';
import { createWorkers, runWorkersUntil } from '../worker/worker';
import { STAGE_RETRY } from '../workflows/configuration';
import { configurationWorkflowId, sweepWorkflow } from '../workflows/sweep';
import { convStackModel } from './support/onnx-graph';
import { startTestSeaweedFs } from './support/seaweedfs';

// The real workflows, activities and stages on Temporal's time-skipping test server: a stage that fails
// because the S3 store is not up yet is retried with the workflow's backoff (skipped, not waited out),
// and bad input fails at once.
const EventType = temporal.api.enums.v1.EventType;
const QUEUES = { gpu: 'retries-gpu', cpu: 'retries-cpu' };
const SWEEP_ID = 'sweep-retries';

let dir: string;
let env: TestWorkflowEnvironment;
let disposeS3: (() => Promise<void>) | undefined;

before(async () => {
  // The test server lacks capabilities the SDK warns about; expected stage failures would log too.
  installRuntime({ level: 'ERROR' });
  dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-retries-'));
  env = await startTimeSkippingTemporal();
});

after(async () => {
  await env?.teardown();
  await disposeS3?.();
  await rm(dir, { recursive: true, force: true });
});

type History = temporal.api.history.v1.IHistoryEvent[];

/** Polls until the named activity's `attempt` has failed and the next one waits for its backoff. */
async function attemptFailed(handle: WorkflowHandle, activity: string, attempt: number): Promise<string> {
  for (;;) {
    // The child workflow may not have started yet.
    const raw = await handle.describe().then(
      (description) => description.raw,
      (error: unknown) => {
        if (error instanceof WorkflowNotFoundError) return undefined;
        throw error;
      },
    );
    const pending = raw?.pendingActivities?.find((a) => a.activityType?.name === activity);
    if (pending && (pending.attempt ?? 0) > attempt && pending.lastFailure)
      return pending.lastFailure.message ?? '';
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const seconds = (time: temporal.api.history.v1.IHistoryEvent['eventTime']) =>
  Number(time?.seconds ?? 0) + (time?.nanos ?? 0) / 1e9;

test('a stage retried with backoff until the store is up; bad input fails once', {
  timeout: 180_000,
}, async () => {
  // The S3 server's address and identity are fixed now, but it starts only after two failed attempts.
  const port = await freePort();
  const identity = { accessKeyId: 'RETRIESTEST', secretAccessKey: randomBytes(20).toString('hex') };
  // Stage threads take the S3 identity from the environment, as workers do.
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: identity.accessKeyId,
    AWS_SECRET_ACCESS_KEY: identity.secretAccessKey,
    AWS_REGION: 'us-east-1',
  });
  const storeUrl = `s3://retries/artifacts?endpoint=http://127.0.0.1:${port}`;

  // A one-convolution ONNX backbone (224 -> 7x7x8) keeps extraction, training and explanations quick.
  const backboneFile = path.join(dir, 'conv.onnx');
  await writeFile(
    backboneFile,
    convStackModel({ side: 224, stages: [{ channels: 8, stride: 32 }], seed: 1, output: 'nchw' }).model,
  );
  const backbone = { name: 'conv8', file: backboneFile, preset: 'resnet50', provider: 'cpu' };
  const heads = {
    baseline: { epochs: 2, batchSize: 8, weight: { learningRate: 0.05 }, bias: { learningRate: 0.05 } },
    infodisent: {
      epochs: 2,
      batchSize: 8,
      rotation: { learningRate: 0.001 },
      weight: { learningRate: 0.05 },
      bias: { learningRate: 0.05 },
    },
  };
  const sweep = parseSweep({
    name: 'retries',
    configurations: [
      {
        name: 'parts-conv8',
        backend: 'cpu',
        dataset: {
          kind: 'parts',
          name: 'parts-retries',
          generator: { seed: 5, classes: 3, trainPerClass: 4, testPerClass: 2, imageSize: 64 },
        },
        backbone,
        heads,
      },
      {
        name: 'cub-missing',
        backend: 'cpu',
        dataset: { kind: 'cub', root: path.join(dir, 'no-such-cub') },
        backbone,
        heads,
      },
    ],
  });

  const workers = await createWorkers({
    connection: env.nativeConnection,
    namespace: 'default',
    queues: QUEUES,
    roles: ['gpu', 'cpu'],
    location: { storeUrl, dataDir: path.join(dir, 'datasets') },
  });
  const realStart = Date.now();
  const handle = await env.client.workflow.start(sweepWorkflow, {
    workflowId: SWEEP_ID,
    taskQueue: QUEUES.cpu,
    args: [{ sweep, queues: QUEUES, parallelism: 2 }],
  });
  const parts = env.client.workflow.getHandle(configurationWorkflowId(SWEEP_ID, 'parts-conv8'));
  const output = await runWorkersUntil(
    workers,
    (async () => {
      // Until a result is awaited the server's clock runs at real speed: attempt 1 fails, env.sleep skips
      // its backoff, attempt 2 fails, and only then does the store come up.
      const firstFailure = await attemptFailed(parts, 'extractFeatures', 1);
      assert.match(firstFailure, /S3 .* at http:\/\/127\.0\.0\.1:\d+ failed after \d+ attempts/);
      await env.sleep(STAGE_RETRY.initialInterval);
      await attemptFailed(parts, 'extractFeatures', 2);
      const { server, dispose } = await startTestSeaweedFs({ s3Port: port, ...identity });
      disposeS3 = dispose;
      await (openStore(`s3://retries?endpoint=${server.endpoint}`) as S3ArtifactStore).createBucket();
      // Awaiting the result lets the server skip the rest of the second backoff.
      return handle.result();
    })(),
  );
  const realSeconds = (Date.now() - realStart) / 1000;

  const results: SweepResults = output.results;
  assert.deepEqual(
    results.completed.map((c) => c.configuration),
    ['parts-conv8'],
  );
  assert.deepEqual(
    results.completed[0]!.heads.map((h) => h.kind),
    ['baseline', 'infodisent'],
  );
  assert.equal(results.failed.length, 1);
  assert.equal(results.failed[0]!.configuration, 'cub-missing');
  assert.match(results.failed[0]!.error, /^prepareDataset: .*no-such-cub.*: missing/);
  const stored = await openStore(storeUrl).get(output.resultKeys[0]!);
  assert.equal(JSON.parse(stored!.toString('utf8')).completed.length, 1, 'results.json is in S3');

  // The history: extraction of the training split started three times, the last one after both backoffs.
  const { events } = await parts.fetchHistory();
  const history: History = events ?? [];
  const scheduled = history.find(
    (e) =>
      e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
      e.activityTaskScheduledEventAttributes?.activityType?.name === 'extractFeatures',
  )!;
  const startedEvent = history.find(
    (e) =>
      e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
      Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === Number(scheduled.eventId),
  )!;
  assert.equal(startedEvent.activityTaskStartedEventAttributes?.attempt, 3);
  const twoBackoffs = msToNumber(STAGE_RETRY.initialInterval) * (1 + STAGE_RETRY.backoffCoefficient);
  const virtualSeconds = seconds(startedEvent.eventTime) - seconds(scheduled.eventTime);
  assert.ok(
    virtualSeconds >= twoBackoffs / 1000,
    `attempt 3 started ${virtualSeconds.toFixed(1)} s after the first, within the ${twoBackoffs / 1000} s of backoff`,
  );
  // Skipped, not waited out: env.sleep jumped the first backoff and awaiting the result the rest of the
  // second, so the sweep took longer on the server's clock than on the test's.
  const sweepHistory: History = (await handle.fetchHistory()).events ?? [];
  const sweepSeconds = seconds(sweepHistory.at(-1)?.eventTime) - seconds(sweepHistory[0]?.eventTime);
  assert.equal(sweepHistory.at(-1)?.eventType, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
  assert.ok(
    sweepSeconds - realSeconds >= msToNumber(STAGE_RETRY.initialInterval) / 1000 - 1,
    `the sweep took ${sweepSeconds.toFixed(1)} s of server time and ${realSeconds.toFixed(1)} s of real time`,
  );

  // Bad input: the missing dataset failed on its first attempt, not retried.
  const { events: cubEvents } = await env.client.workflow
    .getHandle(configurationWorkflowId(SWEEP_ID, 'cub-missing'))
    .fetchHistory();
  const cubHistory: History = cubEvents ?? [];
  const cubStarted = cubHistory.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED);
  assert.deepEqual(
    cubStarted.map((e) => e.activityTaskStartedEventAttributes?.attempt),
    [1],
  );
  const failure = cubHistory.find((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    ?.activityTaskFailedEventAttributes?.failure;
  assert.equal(failure?.applicationFailureInfo?.type, 'InputError');
  assert.equal(failure?.applicationFailureInfo?.nonRetryable, true);
});
