import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { parseSweep } from '../core/config/experiment';
import type { SweepInput } from '../workflows/sweep';
import { CliError } from './output';

/** The input, task queue and memo the run was started with: its first history event. */
export async function startedWith(client: Client, workflowId: string, runId: string) {
  const { history } = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId, runId },
    maximumPageSize: 1,
  });
  const attributes = history?.events?.[0]?.workflowExecutionStartedEventAttributes;
  const payload = attributes?.input?.payloads?.[0];
  if (!attributes || !payload)
    throw new CliError(`run ${runId} of '${workflowId}' has no start input in its history`);
  const input = defaultPayloadConverter.fromPayload<SweepInput>(payload);
  const memo = Object.fromEntries(
    Object.entries(attributes.memo?.fields ?? {}).map(([key, value]) => [
      key,
      defaultPayloadConverter.fromPayload(value),
    ]),
  );
  // Re-validated: the configuration schema may have changed since the run started.
  const sweep = parseSweep(input.sweep, `(the input of run ${runId} of '${workflowId}')`);
  return { input: { ...input, sweep }, taskQueue: attributes.taskQueue?.name ?? input.queues.cpu, memo };
}
