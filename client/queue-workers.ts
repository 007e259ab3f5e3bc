import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const { TaskQueueType } = temporal.api.enums.v1;

export interface QueuePoller {
  identity: string;
  /** Seconds since its last poll began: a long poll lasts about a minute, and a busy worker does not poll. */
  secondsAgo: number;
}

/**
 * An idle worker polls again within about a minute (a long poll's length); one not seen for longer has
 * stopped (or is busy with all its slots), though Temporal still lists it for a few minutes.
 */
export const POLL_GAP_SECONDS = 90;

/** The pollers seen within POLL_GAP_SECONDS: the workers taken to serve the queue now. */
export function livePollers(pollers: readonly QueuePoller[]): QueuePoller[] {
  return pollers.filter((poller) => poller.secondsAgo < POLL_GAP_SECONDS);
}

/**
 * Who polled a task queue for activities (and, with `workflows`, for workflow tasks), most recent first:
 * Temporal lists a worker for a few minutes after its last poll.
 */
export async function queuePollers(client: Client, queue: string, workflows = false): Promise<QueuePoller[]> {
  const types = workflows
    ? [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]
    : [TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY];
  const now = Date.now();
  const latest = new Map<string, number>();
  for (const taskQueueType of types) {
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: queue },
      taskQueueType,
    });
    for (const poller of pollers ?? []) {
      const identity = poller.identity || 'an unnamed worker';
      const secondsAgo = Math.max(0, now / 1000 - Number(poller.lastAccessTime?.seconds ?? 0));
      latest.set(identity, Math.min(secondsAgo, latest.get(identity) ?? Number.POSITIVE_INFINITY));
    }
  }
  return [...latest]
    .map(([identity, secondsAgo]) => ({ identity, secondsAgo }))
    .sort((a, b) => a.secondsAgo - b.secondsAgo);
}
