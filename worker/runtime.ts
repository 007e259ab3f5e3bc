import { DefaultLogger, type LogLevel, Runtime } from '@temporalio/worker';

let installed = false;

/**
 * Installs the Temporal runtime with a logger at `level` (WARN by default, so the CLI's own progress
 * stays readable; INFODISENT_LOG_LEVEL overrides). Must run before any connection or worker is made.
 */
export function installRuntime(
  level: LogLevel = (process.env['INFODISENT_LOG_LEVEL'] as LogLevel) ?? 'WARN',
): void {
  if (installed) return;
  Runtime.install({ logger: new DefaultLogger(level) });
  installed = true;
}
