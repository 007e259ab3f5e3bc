import type { Client, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { roughDuration } from '../core/util/duration';
import { POLL_GAP_SECONDS, queuePollers } from './queue-workers';

/**
 * The running stage's activity as the server holds it: run by a worker, or waiting for one (a first attempt
 * not yet picked up, or a retry after its worker was lost or failed).
 */
export interface StageActivity {
  state: 'running' | 'waiting';
  taskQueue: string;
  attempt: number;
  /** 0: no limit. */
  maximumAttempts: number;
  /** The worker running it, or the last one that did. */
  worker?: string;
  /** Seconds since its last heartbeat (or its start, before any), while running. */
  silentSeconds?: number;
  /** Seconds since it became due, while waiting; below 0 while a retry waits for its backoff. */
  waitingSeconds?: number;
  /** How its previous attempt ended. */
  lastFailure?: string;
  /** Seconds since a worker last polled its task queue, while it waits; null: none did in the last minutes. */
  lastPollSeconds?: number | null;
}

type PendingActivity = NonNullable<
  Awaited<ReturnType<WorkflowHandle['describe']>>['raw']['pendingActivities']
>[number];
type Timestamp = PendingActivity['lastHeartbeatTime'];

const { PendingActivityState, TimeoutType } = temporal.api.enums.v1;

const secondsSince = (time: Timestamp, now: number) =>
  time?.seconds == null ? undefined : (now - Number(time.seconds) * 1000 - (time.nanos ?? 0) / 1e6) / 1000;

/** How an attempt ended, in words: a lost worker rather than "activity Heartbeat timeout". */
function failureWords(
  failure: PendingActivity['lastFailure'],
  heartbeatTimeout: Timestamp,
): string | undefined {
  if (!failure) return undefined;
  const timeout = failure.timeoutFailureInfo?.timeoutType;
  if (timeout === TimeoutType.TIMEOUT_TYPE_HEARTBEAT) {
    const limit =
      heartbeatTimeout?.seconds == null ? '' : ` for ${roughDuration(Number(heartbeatTimeout.seconds))}`;
    return `its worker sent no heartbeat${limit}`;
  }
  if (timeout === TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE) return 'it ran past its time limit';
  return (failure.message ?? 'failed').split('\n')[0]!.slice(0, 160);
}

/** A pending activity of a configuration's workflow, as `describe` gives it, at time `now`. */
export function stageActivity(activity: PendingActivity, now: number): StageActivity {
  const waiting = activity.state !== PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;
  // A retry keeps the heartbeat its lost attempt last sent: silence counts from whichever came later.
  const signsOfLife = [activity.lastHeartbeatTime, activity.lastStartedTime].flatMap((time) => {
    const seconds = secondsSince(time, now);
    return seconds === undefined ? [] : [seconds];
  });
  const silentSeconds = waiting || signsOfLife.length === 0 ? undefined : Math.min(...signsOfLife);
  const waitingSeconds = waiting ? secondsSince(activity.scheduledTime, now) : undefined;
  const lastFailure =
    (activity.attempt ?? 1) > 1
      ? failureWords(activity.lastFailure, activity.activityOptions?.heartbeatTimeout)
      : undefined;
  return {
    state: waiting ? 'waiting' : 'running',
    taskQueue: activity.activityOptions?.taskQueue?.name ?? '',
    attempt: activity.attempt ?? 1,
    maximumAttempts: activity.maximumAttempts ?? 0,
    ...(activity.lastWorkerIdentity ? { worker: activity.lastWorkerIdentity } : {}),
    ...(silentSeconds === undefined ? {} : { silentSeconds }),
    ...(waitingSeconds === undefined ? {} : { waitingSeconds }),
    ...(lastFailure ? { lastFailure } : {}),
  };
}

/** When a worker last polled each queue where a stage waits: a stage can wait on a queue nobody serves. */
export async function readLastPolls(
  client: Client,
  activities: (StageActivity | undefined)[],
): Promise<void> {
  const waiting = activities.filter((activity): activity is StageActivity => activity?.state === 'waiting');
  const queues = new Map<string, Promise<number | null>>();
  for (const activity of waiting) {
    const last =
      queues.get(activity.taskQueue) ??
      queuePollers(client, activity.taskQueue).then((pollers) => pollers[0]?.secondsAgo ?? null);
    queues.set(activity.taskQueue, last);
    activity.lastPollSeconds = await last;
  }
}

/** A stage whose worker sent no heartbeat for this long is worth a word: it heartbeats every few seconds. */
const SILENT_AFTER_SECONDS = 30;
/** A first attempt waiting this long for a worker is worth a word; a moment between stages is not. */
const WAITING_AFTER_SECONDS = 10;

/**
 * What is wrong with a running stage's activity, in words, or '' when nothing is: a worker gone silent, a
 * retry after a lost worker or a failure, a stage waiting for a worker (and none polls its queue).
 */
export function activityNote(activity: StageActivity | undefined): string {
  if (!activity) return '';
  const { attempt, maximumAttempts, worker, taskQueue } = activity;
  if (activity.state === 'running') {
    const silent = activity.silentSeconds ?? 0;
    return silent >= SILENT_AFTER_SECONDS
      ? `no heartbeat from ${worker ?? 'its worker'} for ${roughDuration(silent)}`
      : '';
  }
  const waited = activity.waitingSeconds ?? 0;
  if (attempt === 1 && waited < WAITING_AFTER_SECONDS) return '';
  const of = maximumAttempts > 0 ? ` of ${maximumAttempts}` : '';
  const which = attempt > 1 ? `attempt ${attempt}${of} ` : '';
  const previous = activity.lastFailure
    ? ` (attempt ${attempt - 1}: ${activity.lastFailure}${worker ? `, on ${worker}` : ''})`
    : '';
  const when = waited < 0 ? `starts in ${roughDuration(-waited)}` : `waits for a worker on '${taskQueue}'`;
  const last = activity.lastPollSeconds;
  const polls =
    waited < 0 || last === undefined || (last !== null && last < POLL_GAP_SECONDS)
      ? ''
      : last === null
        ? ': no worker polls it'
        : `: no worker polled it for ${roughDuration(last)}`;
  return `${which}${when}${polls}${previous}`;
}
