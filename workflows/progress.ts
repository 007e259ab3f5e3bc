import { defineQuery } from '@temporalio/workflow';

export type StageStatus = 'pending' | 'running' | 'done' | 'failed';

export interface StageState {
  name: string;
  status: StageStatus;
  /** A short outcome, e.g. 'cached' or 'top-1 61.0%'. */
  summary?: string;
}

export interface ConfigurationProgress {
  configuration: string;
  stages: StageState[];
}

export interface SweepProgress {
  sweep: string;
  /** 'cancelled': the configuration's workflow was cancelled with the sweep, rather than failed. */
  configurations: { name: string; workflowId: string; status: StageStatus | 'cancelled'; error?: string }[];
}

export const configurationProgressQuery = defineQuery<ConfigurationProgress>('configurationProgress');
export const sweepProgressQuery = defineQuery<SweepProgress>('sweepProgress');

/** Task queues: heavy tensor work on GPU workers, the rest on CPU workers. */
export interface TaskQueues {
  gpu: string;
  cpu: string;
}

export const DEFAULT_TASK_QUEUES: TaskQueues = { gpu: 'infodisent-gpu', cpu: 'infodisent-cpu' };
