import assert from 'node:assert/strict';
import { test } from 'node:test';
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
