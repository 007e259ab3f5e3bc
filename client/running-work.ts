import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Activities } from '../activities';
import type { RunningWork } from '../core/pipeline/prune';
import { type ConfigurationOutcome, outcomeKeys } from '../core/pipeline/results';
import type { ExplainStageResult, FeaturesRef, TrainedHeadRef } from '../core/pipeline/stages';
import { startQuietTemporal } from '../infra/dev-server';
import { configurationWorkflow } from '../workflows/configuration';
import { sweepWorkflow } from '../workflows/sweep';

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

/** The store keys in an activity's result, for the activities that resolve a stored artifact. */
const ACTIVITY_KEYS: Partial<Record<keyof Activities, (result: unknown) => string[]>> = {
  extractFeatures: (result) => [(result as FeaturesRef).key],
  trainHead: (result) => [(result as TrainedHeadRef).key],
  explain: (result) => [(result as ExplainStageResult).summaryKey],
};

/**
 * The artifacts a workflow's history shows it resolved: features, heads and summaries from its finished
 * activities (a configuration), and everything its finished configurations read (a sweep).
 */
export function keysInHistory(events: readonly HistoryEvent[]): string[] {
  const activityTypes = new Map<string, string>();
  const keys: string[] = [];
  for (const event of events) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name) activityTypes.set(String(event.eventId), scheduled.activityType.name);
    const completed = event.activityTaskCompletedEventAttributes;
    const keysOf = ACTIVITY_KEYS[activityTypes.get(String(completed?.scheduledEventId)) as keyof Activities];
    const activityResult = completed?.result?.payloads?.[0];
    if (keysOf && activityResult) keys.push(...keysOf(defaultPayloadConverter.fromPayload(activityResult)));
    const child = event.childWorkflowExecutionCompletedEventAttributes;
    const outcome = child?.result?.payloads?.[0];
    if (child?.workflowType?.name === configurationWorkflow.name && outcome)
      keys.push(...outcomeKeys(defaultPayloadConverter.fromPayload<ConfigurationOutcome>(outcome)));
  }
  return keys;
}

/** The running sweeps and configurations in the client's namespace, and every artifact they resolved so far. */
export async function runningWork(client: Client): Promise<Exclude<RunningWork, 'unchecked'>> {
  const types = [sweepWorkflow.name, configurationWorkflow.name].map((type) => `WorkflowType = '${type}'`);
  const workflows: string[] = [];
  const keys = new Set<string>();
  for await (const info of client.workflow.list({
    query: `ExecutionStatus = 'Running' AND (${types.join(' OR ')})`,
  })) {
    workflows.push(info.workflowId);
    const { events } = await client.workflow.getHandle(info.workflowId, info.runId).fetchHistory();
    for (const key of keysInHistory(events ?? [])) keys.add(key);
  }
  return { workflows, keys };
}

/** runningWork of the history `infodisent run` keeps in `home`, read by a dev server started on it for the purpose. */
export async function embeddedRunningWork(home: string): Promise<Exclude<RunningWork, 'unchecked'>> {
  const temporal = await startQuietTemporal(home);
  try {
    return await runningWork(temporal.client);
  } finally {
    await temporal.stop();
  }
}
