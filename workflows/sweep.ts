import type { Duration } from '@temporalio/common';
import {
  ActivityFailure,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { Configuration, Sweep } from '../core/config/experiment';
import type { ConfigurationFailure, ConfigurationOutcome, SweepResults } from '../core/pipeline/results';
import { evaluationKeys, sweepAnnotations } from '../core/report/summary';
import { configurationWorkflow } from './configuration';
import { type SweepProgress, sweepProgressQuery, type TaskQueues } from './progress';

export interface SweepInput {
  sweep: Sweep;
  queues: TaskQueues;
  /** Configurations run at once (each is a child workflow). */
  parallelism: number;
  /** How soon a lost worker's activity is retried elsewhere (default '2m'). */
  heartbeatTimeout?: Duration;
}

export interface SweepOutput {
  results: SweepResults;
  resultKeys: string[];
  /** The HTML report's index and the paper tables, in the store. */
  reportKey: string;
  tableKeys: string[];
}

/** Marks histories in which configurations sharing features run in one lane (see sweepWorkflow). */
const SHARED_FEATURES_PATCH = 'lanes-by-shared-features';
/** Marks histories in which a finished sweep tells the CPU worker's webhook. */
const NOTIFY_PATCH = 'notify-when-finished';
/** Histories from before the memo counted finished configurations replay without those commands. */
const TALLY_MEMO_PATCH = 'tally-in-memo';
/** Marks histories whose memo counts cancelled configurations apart from failed ones. */
const CANCELLED_MEMO_PATCH = 'cancelled-in-memo';

export function configurationWorkflowId(sweepWorkflowId: string, configuration: string): string {
  return `${sweepWorkflowId}/${configuration}`;
}

/**
 * Why a configuration failed, for the results: the stage and its own error, found under the child
 * workflow's failure and the activity failure that wrap it.
 */
function failureReason(error: unknown): string {
  const chain: Error[] = [];
  for (let e: unknown = error; e instanceof Error; e = e.cause) chain.push(e);
  const activity = chain.find((e): e is ActivityFailure => e instanceof ActivityFailure);
  const root = chain.at(-1)?.message ?? String(error);
  return activity?.activityType ? `${activity.activityType}: ${root}` : root;
}

/**
 * Indexes of the configurations grouped by the features they read (same dataset, backbone and feature
 * dtype), groups in order of first appearance: e.g. the runs of one configuration's `seeds`.
 */
function sharedFeatureGroups(configurations: readonly Configuration[]): number[][] {
  const groups = new Map<string, number[]>();
  configurations.forEach(({ dataset, backbone, features }, index) => {
    const key = JSON.stringify([dataset, backbone, features.dtype]);
    groups.set(key, [...(groups.get(key) ?? []), index]);
  });
  return [...groups.values()];
}

/**
 * One child workflow per configuration; a failed configuration is reported, and the others go on.
 * Configurations that read the same features run one after another in one lane, so that the first
 * extracts them and the others find them cached.
 */
export async function sweepWorkflow({
  sweep,
  queues,
  parallelism,
  heartbeatTimeout,
}: SweepInput): Promise<SweepOutput> {
  const { workflowId } = workflowInfo();
  const progress: SweepProgress = {
    sweep: sweep.name,
    configurations: sweep.configurations.map((c) => ({
      name: c.name,
      workflowId: configurationWorkflowId(workflowId, c.name),
      status: 'pending',
    })),
  };
  setHandler(sweepProgressQuery, () => progress);

  const completed: ConfigurationOutcome[] = [];
  const failed: ConfigurationFailure[] = [];
  let cancelled = 0;
  const run = async (index: number) => {
    const configuration = sweep.configurations[index]!;
    const entry = progress.configurations[index]!;
    entry.status = 'running';
    try {
      completed.push(
        await executeChild(configurationWorkflow, {
          workflowId: entry.workflowId,
          args: [{ configuration, queues, ...(heartbeatTimeout ? { heartbeatTimeout } : {}) }],
          taskQueue: queues.cpu,
        }),
      );
      entry.status = 'done';
    } catch (error) {
      // The results list a cancelled configuration among the failed, as before; the query and memo tell it apart.
      if (isCancellation(error)) {
        entry.status = 'cancelled';
        cancelled++;
      } else entry.status = 'failed';
      entry.error = failureReason(error);
      failed.push({ configuration: configuration.name, error: entry.error });
    }
    // `sweep list` reads the memo from visibility: how far each sweep got, without a query to a worker.
    if (patched(TALLY_MEMO_PATCH)) {
      // Histories from before the cancelled count replay the memo they recorded.
      upsertMemo(
        patched(CANCELLED_MEMO_PATCH)
          ? { done: completed.length, failed: failed.length - cancelled, cancelled }
          : { done: completed.length, failed: failed.length },
      );
    }
  };
  // Histories from before the grouping replay as they ran: one configuration a group.
  const groups = patched(SHARED_FEATURES_PATCH)
    ? sharedFeatureGroups(sweep.configurations)
    : sweep.configurations.map((_, index) => [index]);
  let next = 0;
  const lane = async () => {
    while (next < groups.length) {
      for (const index of groups[next++]!) await run(index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallelism) }, lane));
  const order = (name: string) => sweep.configurations.findIndex((c) => c.name === name);
  completed.sort((a, b) => order(a.configuration) - order(b.configuration));
  const results: SweepResults = {
    sweep: sweep.name,
    finishedAt: new Date().toISOString(),
    completed,
    failed,
  };
  const { writeResults, writeReport } = proxyActivities<Activities>({
    taskQueue: queues.cpu,
    startToCloseTimeout: '1h',
    heartbeatTimeout: heartbeatTimeout ?? '2m',
    retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['InputError'] },
  });
  const resultKeys = await writeResults(results);
  const { reportKey, tableKeys } = await writeReport({
    sweep: sweep.name,
    generatedAt: results.finishedAt,
    ...(sweep.description ? { description: sweep.description } : {}),
    failed,
    annotations: sweepAnnotations(completed),
    summaryKeys: completed.map((outcome) => outcome.summaryKey),
    evaluationKeys: completed.map(evaluationKeys),
  });
  // Histories from before the notification replay as they ran.
  if (patched(NOTIFY_PATCH)) {
    const { notifyFinished } = proxyActivities<Activities>({
      taskQueue: queues.cpu,
      startToCloseTimeout: '1m',
      retry: { maximumAttempts: 3, initialInterval: '2s' },
    });
    // A webhook that fails does not fail the sweep: its failure stays in the history and the worker's log.
    await notifyFinished(results, reportKey).catch(() => undefined);
  }
  return { results, resultKeys, reportKey, tableKeys };
}
