import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import cliProgress from 'cli-progress';
import type { StageProgress } from '../activities';
import {
  type ConfigurationProgress,
  configurationProgressQuery,
  type SweepProgress,
  sweepProgressQuery,
} from '../workflows/progress';

/** One configuration's state as the CLI shows it: its current stage and, while an activity runs, its heartbeat. */
export interface ConfigurationView {
  name: string;
  status: string;
  stage: string;
  done: number;
  total: number;
  detail: string;
}

async function currentActivity(handle: WorkflowHandle): Promise<StageProgress | undefined> {
  const description = await handle.describe();
  for (const activity of description.raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (payload) return defaultPayloadConverter.fromPayload<StageProgress>(payload);
  }
  return undefined;
}

/** Reads a sweep's progress through its queries (and its children's pending activities). */
export async function readSweepView(client: Client, sweepWorkflowId: string): Promise<ConfigurationView[]> {
  const sweep: SweepProgress = await client.workflow.getHandle(sweepWorkflowId).query(sweepProgressQuery);
  return Promise.all(
    sweep.configurations.map(async (entry): Promise<ConfigurationView> => {
      const base = {
        name: entry.name,
        status: entry.status,
        stage: entry.status,
        done: 0,
        total: 1,
        detail: entry.error ?? '',
      };
      if (entry.status !== 'running') return { ...base, done: entry.status === 'done' ? 1 : 0 };
      try {
        const child = client.workflow.getHandle(entry.workflowId);
        const progress: ConfigurationProgress = await child.query(configurationProgressQuery);
        const finished = progress.stages.filter((s) => s.status === 'done').length;
        const running = progress.stages.find((s) => s.status === 'running');
        const heartbeat = running ? await currentActivity(child) : undefined;
        return {
          ...base,
          stage: heartbeat?.stage ?? running?.name ?? 'starting',
          done: heartbeat ? heartbeat.done : finished,
          total: heartbeat ? heartbeat.total : progress.stages.length,
          detail: heartbeat?.detail ?? `${finished}/${progress.stages.length} stages`,
        };
      } catch {
        return { ...base, stage: 'starting' };
      }
    }),
  );
}

/**
 * Polls a sweep until `done` settles: progress bars on a terminal, one line per change otherwise
 * (logs, CI). Returns once the final state has been drawn.
 */
export async function followSweep<T>(
  client: Client,
  sweepWorkflowId: string,
  done: Promise<T>,
  intervalMs = 1000,
): Promise<T> {
  const interactive = Boolean(process.stderr.isTTY);
  const bars = interactive
    ? new cliProgress.MultiBar(
        {
          format: ' {name} |{bar}| {stage} {value}/{total} {detail}',
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const barsByName = new Map<string, cliProgress.SingleBar>();
  const lastLine = new Map<string, string>();
  let finished = false;
  const settled = done.finally(() => {
    finished = true;
  });
  const draw = async () => {
    let views: ConfigurationView[];
    try {
      views = await readSweepView(client, sweepWorkflowId);
    } catch {
      return; // the workflow has not started yet
    }
    for (const view of views) {
      const payload = { name: view.name, stage: view.stage, detail: view.detail };
      if (bars) {
        const bar = barsByName.get(view.name) ?? bars.create(view.total, view.done, payload);
        barsByName.set(view.name, bar);
        bar.setTotal(view.total);
        bar.update(view.done, payload);
      } else {
        const decile = Math.floor((10 * view.done) / Math.max(1, view.total));
        const line = `${view.name}: ${view.stage} ${decile * 10}% ${view.detail}`;
        const key = `${view.name}: ${view.stage} ${decile}`;
        if (lastLine.get(view.name) !== key) process.stderr.write(`${line}\n`);
        lastLine.set(view.name, key);
      }
    }
  };
  while (!finished) {
    await draw();
    await Promise.race([
      settled.catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, intervalMs)),
    ]);
  }
  await draw();
  bars?.stop();
  return settled;
}
