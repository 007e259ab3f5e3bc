import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import cliProgress from 'cli-progress';
import type { StageProgress } from '../activities';
import { roughDuration } from '../core/util/duration';
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
  /** The bar's position: the running stage's items once it has reported, else stages finished. */
  done: number;
  total: number;
  /** The running stage's own words (a loss), or why the configuration failed. */
  detail: string;
  /** Stages finished and in all, while the configuration runs. */
  stages?: { done: number; total: number };
  /** The running stage's own progress, from its activity's last heartbeat. */
  heartbeat?: StageProgress;
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
          stage:
            heartbeat?.stage ??
            running?.name ??
            (finished === progress.stages.length ? 'finishing' : 'starting'),
          done: heartbeat ? heartbeat.done : finished,
          total: heartbeat ? heartbeat.total : progress.stages.length,
          detail: heartbeat?.detail ?? '',
          stages: { done: finished, total: progress.stages.length },
          ...(heartbeat ? { heartbeat } : {}),
        };
      } catch {
        return { ...base, stage: 'starting' };
      }
    }),
  );
}

/**
 * Throughput and time left of each configuration's current stage, from the progress seen since the stage
 * was first seen (a follower that attaches late measures from then).
 */
export class StageClock {
  private readonly starts = new Map<string, { stage: string; done: number; at: number }>();

  /** " · 120/s · 12m left" once the stage has moved for a few seconds; '' until then. */
  describe(view: ConfigurationView, now = Date.now()): string {
    const start = this.starts.get(view.name);
    if (!start || start.stage !== view.stage || view.done < start.done) {
      this.starts.set(view.name, { stage: view.stage, done: view.done, at: now });
      return '';
    }
    const seconds = (now - start.at) / 1000;
    const rate = (view.done - start.done) / seconds;
    if (!(seconds >= 3 && rate > 0) || view.done >= view.total) return '';
    return ` · ${rate < 10 ? rate.toFixed(1) : Math.round(rate)}/s · ${roughDuration((view.total - view.done) / rate)} left`;
  }
}

/** Which stage of how many a running configuration is at, and what its stage says ('stage 6 of 8 · loss 1.455'). */
export function progressDetail(view: ConfigurationView): string {
  if (view.status !== 'running' || !view.stages) return view.detail;
  const { done, total } = view.stages;
  const position = done < total ? `stage ${done + 1} of ${total}` : `all ${total} stages done`;
  return `${position}${view.detail ? ` · ${view.detail}` : ''}`;
}

/**
 * A configuration's progress as one log line, where no terminal shows bars (logs, CI), and the key that says
 * when it is worth a new line: a new stage, status or tenth of the stage. `pace` is StageClock's rate and time left.
 */
export function progressLogLine(view: ConfigurationView, pace = ''): { line: string; key: string } {
  const { name, stage, heartbeat } = view;
  const detail = progressDetail(view);
  if (view.status !== 'running')
    return { line: `${name}: ${view.status}${detail ? ` · ${detail}` : ''}`, key: view.status };
  if (!heartbeat) return { line: `${name}: ${stage} · ${detail}`, key: stage };
  const decile = Math.floor((10 * heartbeat.done) / Math.max(1, heartbeat.total));
  return {
    line: `${name}: ${stage} ${decile * 10}% (${heartbeat.done}/${heartbeat.total}) · ${detail}${pace}`,
    key: `${stage} ${decile}`,
  };
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
  const clock = new StageClock();
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
      const pace = clock.describe(view);
      if (bars) {
        const payload = { name: view.name, stage: view.stage, detail: progressDetail(view) + pace };
        const bar = barsByName.get(view.name) ?? bars.create(view.total, view.done, payload);
        barsByName.set(view.name, bar);
        bar.setTotal(view.total);
        bar.update(view.done, payload);
      } else {
        const { line, key } = progressLogLine(view, pace);
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
