import type { Duration } from '@temporalio/common';
import {
  ActivityFailure,
  executeChild,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { Sweep } from '../core/config/experiment';
import type { ConfigurationFailure, ConfigurationOutcome, SweepResults } from '../core/pipeline/results';
import { reportedFigures } from '../core/report/summary';
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

/** One child workflow per configuration; a failed configuration is reported, and the others go on. */
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
  let next = 0;
  const lane = async () => {
    while (next < sweep.configurations.length) {
      const index = next++;
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
        entry.status = 'failed';
        entry.error = failureReason(error);
        failed.push({ configuration: configuration.name, error: entry.error });
      }
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
    reported: reportedFigures(completed),
    summaryKeys: completed.map((outcome) => outcome.summaryKey),
  });
  return { results, resultKeys, reportKey, tableKeys };
}
