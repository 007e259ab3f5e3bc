import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import cliProgress from 'cli-progress';
import type { StageProgress } from '../activities';
import { roughDuration } from '../core/util/duration';
import {
  type ConfigurationProgress,
  configurationProgressQuery,
  DEFAULT_TASK_QUEUES,
  type SweepProgress,
  sweepProgressQuery,
} from '../workflows/progress';
import { livePollers, queuePollers } from './queue-workers';
import { activityNote, readLastPolls, type StageActivity, stageActivity } from './stage-activity';

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
  activity?: StageActivity;
}

async function currentActivity(
  handle: WorkflowHandle,
): Promise<{ progress?: StageProgress; activity?: StageActivity }> {
  const description = await handle.describe();
  const now = Date.now();
  const [pending] = description.raw.pendingActivities ?? [];
  if (!pending) return {};
  const payload = pending.heartbeatDetails?.payloads?.[0];
  return {
    activity: stageActivity(pending, now),
    ...(payload ? { progress: defaultPayloadConverter.fromPayload<StageProgress>(payload) } : {}),
  };
}

/** How long a progress query may wait for a worker to answer it. */
const PROGRESS_QUERY_TIMEOUT_MS = 5000;
/** A sweep followed this long without an answer to its progress query gets a line that says why. */
const UNANSWERED_NOTE_AFTER_MS = 10_000;

/**
 * Reads a sweep's progress through its queries (and its children's pending activities). A worker of the
 * sweep's task queue answers them; without one, or with one that does not answer, this fails after 5 s.
 */
export function readSweepView(client: Client, sweepWorkflowId: string): Promise<ConfigurationView[]> {
  return client.withDeadline(Date.now() + PROGRESS_QUERY_TIMEOUT_MS, () =>
    readViews(client, sweepWorkflowId),
  );
}

async function readViews(client: Client, sweepWorkflowId: string): Promise<ConfigurationView[]> {
  const sweep: SweepProgress = await client.workflow.getHandle(sweepWorkflowId).query(sweepProgressQuery);
  const views = await Promise.all(
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
        const { progress: heartbeat, activity } = running ? await currentActivity(child) : {};
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
          ...(activity ? { activity } : {}),
        };
      } catch {
        return { ...base, stage: 'starting' };
      }
    }),
  );
  await readLastPolls(
    client,
    views.map((view) => view.activity),
  );
  return views;
}

/**
 * Why a sweep's progress query got no answer, in words: no worker serves the task queue where its workflows
 * run (a CPU worker not started, or another --cpu-queue), or the workers there did not answer.
 */
export async function unansweredProgress(client: Client, taskQueue: string, error: unknown): Promise<string> {
  // Temporal lists a stopped worker for minutes after its last poll: only those seen lately count.
  const pollers = await queuePollers(client, taskQueue, true).then(livePollers, () => undefined);
  if (pollers?.length === 0) {
    const flag = taskQueue === DEFAULT_TASK_QUEUES.cpu ? '' : ` --cpu-queue ${taskQueue}`;
    return (
      `no progress: no worker polls task queue '${taskQueue}', where the sweep's workflows run ` +
      `(start one: infodisent worker --queues cpu${flag})`
    );
  }
  const detail = (error as { cause?: { details?: string } }).cause?.details ?? (error as Error).message;
  const workers = pollers ? ` (${pollers.map((poller) => poller.identity).join(', ')})` : '';
  return `no progress: ${detail}: the workers of task queue '${taskQueue}'${workers} did not answer the progress query`;
}

/**
 * Throughput and time left of each configuration's current stage, from the progress seen since the stage
 * was first seen (a follower that attaches late measures from then).
 */
export class StageClock {
  private readonly starts = new Map<string, { phase: string; done: number; at: number }>();

  /** " · 120/s · 12m left" once the stage has moved for a few seconds; '' until then, or while it waits. */
  describe(view: ConfigurationView, now = Date.now()): string {
    // A retried stage is timed from its new attempt, not across the time it spent without a worker.
    const { attempt = 1, state = 'running' } = view.activity ?? {};
    const phase = `${view.stage} ${attempt} ${state}`;
    const start = this.starts.get(view.name);
    if (!start || start.phase !== phase || view.done < start.done) {
      this.starts.set(view.name, { phase, done: view.done, at: now });
      return '';
    }
    const seconds = (now - start.at) / 1000;
    const rate = (view.done - start.done) / seconds;
    if (!(seconds >= 3 && rate > 0) || view.done >= view.total || state === 'waiting') return '';
    return ` · ${rate < 10 ? rate.toFixed(1) : Math.round(rate)}/s · ${roughDuration((view.total - view.done) / rate)} left`;
  }
}

/**
 * Which stage of how many a running configuration is at, what its stage says, and what is wrong with its
 * activity ('stage 6 of 8 · loss 1.455 · attempt 2 of 5 waits for a worker on …').
 */
export function progressDetail(view: ConfigurationView): string {
  if (view.status !== 'running' || !view.stages) return view.detail;
  const { done, total } = view.stages;
  const position = done < total ? `stage ${done + 1} of ${total}` : `all ${total} stages done`;
  return [position, view.detail, activityNote(view.activity)].filter(Boolean).join(' · ');
}

/**
 * A configuration's progress as one log line, where no terminal shows bars (logs, CI), and the key that says
 * when it is worth a new line: a new stage, status or tenth of the stage. `pace` is StageClock's rate and time left.
 */
export function progressLogLine(view: ConfigurationView, pace = ''): { line: string; key: string } {
  const { name, stage, heartbeat, activity } = view;
  const detail = progressDetail(view);
  if (view.status !== 'running')
    return { line: `${name}: ${view.status}${detail ? ` · ${detail}` : ''}`, key: view.status };
  // A worker lost, a retry, a queue nobody serves: each is news, while the seconds they last are not.
  const trouble =
    activity && activityNote(activity)
      ? ` ${activity.state} ${activity.attempt} ${activity.lastPollSeconds === null ? 'unserved' : ''}`
      : '';
  if (!heartbeat) return { line: `${name}: ${stage} · ${detail}`, key: `${stage}${trouble}` };
  const decile = Math.floor((10 * heartbeat.done) / Math.max(1, heartbeat.total));
  return {
    line: `${name}: ${stage} ${decile * 10}% (${heartbeat.done}/${heartbeat.total}) · ${detail}${pace}`,
    key: `${stage} ${decile}${trouble}`,
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
  const say = (line: string) => (bars ? bars.log(`${line}\n`) : process.stderr.write(`${line}\n`));
  // Until a worker answers the progress query nothing can be drawn; after a while, say why.
  let unansweredSince: number | undefined;
  let toldWhy = false;
  const draw = async () => {
    let views: ConfigurationView[];
    const asked = Date.now();
    try {
      views = await readSweepView(client, sweepWorkflowId);
    } catch (error) {
      unansweredSince ??= asked;
      if (!toldWhy && Date.now() - unansweredSince >= UNANSWERED_NOTE_AFTER_MS) {
        toldWhy = true;
        const { taskQueue } = await client.workflow.getHandle(sweepWorkflowId).describe();
        say(await unansweredProgress(client, taskQueue, error));
      }
      return;
    }
    unansweredSince = undefined;
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
        if (lastLine.get(view.name) !== key) say(line);
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
