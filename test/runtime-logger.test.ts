import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { LogEntry } from '@temporalio/worker';
import { ProjectLogger } from '../worker/runtime';

test("the Temporal logger drops only the SDK's expected warning for a worker without workflows", () => {
  const entries: LogEntry[] = [];
  const logger = new ProjectLogger('WARN', (entry) => entries.push(entry));
  logger.warn('No workflows registered, not polling for workflow tasks', { taskQueue: 'infodisent-gpu' });
  logger.warn('Activity heartbeat timed out', { taskQueue: 'infodisent-gpu' });
  logger.error('No workflows registered, not polling for workflow tasks');
  logger.info('below the level');
  assert.deepEqual(
    entries.map((entry) => [entry.level, entry.message]),
    [
      ['WARN', 'Activity heartbeat timed out'],
      ['ERROR', 'No workflows registered, not polling for workflow tasks'],
    ],
  );
});

test('an activity that failed on bad input, and a failed workflow, are logged in one line; other failures whole', () => {
  const entries: LogEntry[] = [];
  const logger = new ProjectLogger('WARN', (entry) => entries.push(entry));
  const where = { activityType: 'prepareDataset', workflowId: 'sweep-x/cub', taskToken: 'Ci…', attempt: 1 };
  const bad = ApplicationFailure.nonRetryable(
    '/data/cub/images.txt: missing CUB index images.txt',
    'InputError',
  );
  logger.warn('Activity failed', { ...where, error: bad });
  const crash = new Error('out of memory');
  logger.warn('Activity failed', { ...where, error: crash });
  // The workflow above it fails with the activity's failure as its cause, copied out of its sandbox as Errors.
  const wrapped = new Error('Activity task failed', { cause: new Error(bad.message) });
  logger.warn('Workflow failed', {
    workflowType: 'configurationWorkflow',
    workflowId: 'sweep-x/cub',
    runId: 'r1',
    taskQueue: 'infodisent-cpu',
    error: wrapped,
  });
  assert.deepEqual(
    entries.map((entry) => [entry.message, entry.meta]),
    [
      [
        'Activity failed on bad input: /data/cub/images.txt: missing CUB index images.txt',
        { activityType: 'prepareDataset', workflowId: 'sweep-x/cub' },
      ],
      ['Activity failed', { ...where, error: crash }],
      [
        'Workflow failed: Activity task failed: /data/cub/images.txt: missing CUB index images.txt',
        { workflowType: 'configurationWorkflow', workflowId: 'sweep-x/cub', runId: 'r1' },
      ],
    ],
  );
});

test("where the process shows configurations' failures itself, the logger leaves out bad input and failed configurations", () => {
  const entries: LogEntry[] = [];
  const logger = new ProjectLogger('WARN', (entry) => entries.push(entry), true);
  const bad = ApplicationFailure.nonRetryable('/data/cub/images.txt: missing', 'InputError');
  logger.warn('Activity failed', { activityType: 'prepareDataset', workflowId: 'sweep-x/cub', error: bad });
  logger.warn('Workflow failed', {
    workflowType: 'configurationWorkflow',
    workflowId: 'sweep-x/cub',
    error: new Error('Activity task failed', { cause: new Error(bad.message) }),
  });
  const crash = new Error('out of memory');
  logger.warn('Activity failed', { activityType: 'trainHead', error: crash });
  logger.warn('Workflow failed', { workflowType: 'sweepWorkflow', workflowId: 'sweep-x', error: crash });
  assert.deepEqual(
    entries.map((entry) => entry.message),
    ['Activity failed', 'Workflow failed: out of memory'],
  );
});
