import { DefaultLogger, type LogLevel, type LogMetadata, Runtime } from '@temporalio/worker';
import { InputError } from '../core/util/errors';
import { configurationWorkflow } from '../workflows/configuration';

/**
 * Warnings the SDK gives for this project's design: a worker for the GPU queue alone (and the embedded run's
 * worker for that queue) runs activities only, by intent.
 */
const EXPECTED_WARNINGS = new Set(['No workflows registered, not polling for workflow tasks']);

/** An error's message and its causes' ('Activity task failed: /data/cub/images.txt: missing …'). */
function causeChain(error: unknown): string {
  const messages: string[] = [];
  for (let cause = error, depth = 0; typeof cause === 'object' && cause !== null && depth < 8; depth++) {
    const { message } = cause as { message?: unknown };
    if (typeof message === 'string' && message) messages.push(message);
    cause = (cause as { cause?: unknown }).cause;
  }
  return messages.join(': ');
}

/** Only the fields of `meta` that say where, for a one-line record. */
function where(meta: LogMetadata, keys: string[]): LogMetadata {
  return Object.fromEntries(keys.filter((key) => meta[key] !== undefined).map((key) => [key, meta[key]]));
}

/**
 * The SDK's logger, less what this project already says better. Its warning for GPU-queue workers is dropped.
 * An activity that failed on bad input (the message names the file; never retried) and a workflow that failed
 * are each one line without stack or task token: the sweep reports the configuration's failure, and the
 * workflow's history keeps the whole failure, stack included. Other activity failures are logged whole.
 * Where the process shows configurations' failures itself, those two are left out.
 */
export class ProjectLogger extends DefaultLogger {
  constructor(
    level: LogLevel,
    sink?: ConstructorParameters<typeof DefaultLogger>[1],
    /** Where the process shows each configuration's failure itself (`infodisent run`'s progress and summary). */
    private readonly failuresShown = false,
  ) {
    super(level, sink);
  }

  override log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (level === 'WARN' && EXPECTED_WARNINGS.has(message)) return;
    const error = meta?.['error'];
    const badInput = message === 'Activity failed' && (error as { type?: unknown })?.type === InputError.name;
    const configurationFailed =
      message === 'Workflow failed' && meta?.['workflowType'] === configurationWorkflow.name;
    if (this.failuresShown && (badInput || configurationFailed)) return;
    if (meta && badInput) {
      super.log(
        level,
        `${message} on bad input: ${causeChain(error)}`,
        where(meta, ['activityType', 'workflowId']),
      );
      return;
    }
    if (meta && message === 'Workflow failed' && error !== undefined) {
      // A workflow's error reaches this logger copied out of its sandbox: message, stack and cause only.
      super.log(
        level,
        `${message}: ${causeChain(error)}`,
        where(meta, ['workflowType', 'workflowId', 'runId']),
      );
      return;
    }
    super.log(level, message, meta);
  }
}

let installed = false;

/**
 * Installs the Temporal runtime with a logger at `level` (WARN by default, so the CLI's own progress
 * stays readable; INFODISENT_LOG_LEVEL overrides). `failuresShown`: see ProjectLogger. Must run before any
 * connection or worker is made.
 */
export function installRuntime({
  level = (process.env['INFODISENT_LOG_LEVEL'] as LogLevel) ?? 'WARN',
  failuresShown = false,
}: {
  level?: LogLevel;
  failuresShown?: boolean;
} = {}): void {
  if (installed) return;
  Runtime.install({ logger: new ProjectLogger(level, undefined, failuresShown) });
  installed = true;
}
