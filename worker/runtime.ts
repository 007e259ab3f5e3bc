import { DefaultLogger, type LogLevel, type LogMetadata, Runtime } from '@temporalio/worker';

/**
 * Warnings the SDK gives for this project's design: a worker for the GPU queue alone (and the embedded run's
 * worker for that queue) runs activities only, by intent.
 */
const EXPECTED_WARNINGS = new Set(['No workflows registered, not polling for workflow tasks']);

export class ProjectLogger extends DefaultLogger {
  override log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (level === 'WARN' && EXPECTED_WARNINGS.has(message)) return;
    super.log(level, message, meta);
  }
}

let installed = false;

/**
 * Installs the Temporal runtime with a logger at `level` (WARN by default, so the CLI's own progress
 * stays readable; INFODISENT_LOG_LEVEL overrides). Must run before any connection or worker is made.
 */
export function installRuntime(
  level: LogLevel = (process.env['INFODISENT_LOG_LEVEL'] as LogLevel) ?? 'WARN',
): void {
  if (installed) return;
  Runtime.install({ logger: new ProjectLogger(level) });
  installed = true;
}
