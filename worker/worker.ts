import { type NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { StageLocation } from '../core/pipeline/stage-runner';
import type { TaskQueues } from '../workflows/progress';

export type QueueRole = keyof TaskQueues;

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  queues: TaskQueues;
  /** Which queues this process serves: GPU work (extraction, training), CPU work (workflows, datasets, results). */
  roles: QueueRole[];
  /** Where the stages read and write: the artifact store URL and the local data folder. */
  location: StageLocation;
  /** Activities at once on the GPU queue: tensor work shares one device, so 1 by default. */
  gpuConcurrency?: number;
  cpuConcurrency?: number;
  /** A webhook the CPU queue's worker tells when a sweep finishes. */
  notifyUrl?: string | undefined;
  /** Told a line as each stage starts and ends: a worker's log (the embedded run shows progress instead). */
  stageLog?: (line: string) => void;
}

/** Creates one worker per served queue. Workflows run on the CPU queue; every worker has every activity. */
export async function createWorkers(options: WorkerOptions): Promise<Worker[]> {
  const activities = createActivities(options.location, {
    notifyUrl: options.notifyUrl,
    log: options.stageLog,
  });
  return Promise.all(
    options.roles.map((role) =>
      Worker.create({
        connection: options.connection,
        namespace: options.namespace,
        taskQueue: options.queues[role],
        activities,
        ...(role === 'cpu' ? { workflowsPath: require.resolve('../workflows') } : {}),
        maxConcurrentActivityTaskExecutions:
          role === 'gpu' ? (options.gpuConcurrency ?? 1) : (options.cpuConcurrency ?? 2),
        shutdownGraceTime: '5s',
        // The progress the CLI shows (bars, rate, time left) is the last heartbeat the server holds; the SDK
        // would send one a minute at most, and a stage shorter than that would show none of its own.
        maxHeartbeatThrottleInterval: '2s',
      }),
    ),
  );
}

/**
 * Runs the workers until `until` settles (then shuts them down) and returns its value. Stopped sooner (the
 * SDK's runtime shuts workers down on SIGINT and SIGTERM), it rejects once every worker has stopped, so that
 * their connection can close.
 */
export async function runWorkersUntil<T>(workers: Worker[], until: Promise<T>): Promise<T> {
  if (workers.length === 0) return until;
  const [first, ...rest] = workers;
  const nested = rest.reduce<Promise<T>>((inner, worker) => worker.runUntil(inner), until);
  try {
    return await first!.runUntil(nested);
  } finally {
    for (const worker of rest) if (worker.getState() === 'RUNNING') worker.shutdown();
    await nested.catch(() => undefined);
  }
}
