import type { Command } from 'commander';
import { loadSweepFile, type Sweep, selectConfigurations } from '../core/config/experiment';
import type { TaskQueues } from '../workflows/progress';
import type { SweepInput } from '../workflows/sweep';
import { CliError, durationMs, positiveInt } from './output';

export interface OnlyFlag {
  only?: string;
}

/** `--only`: run a subset of a sweep file's configurations. */
export function addOnlyOption(command: Command): Command {
  return command.option(
    '--only <names>',
    "only these configurations: comma-separated names or globs such as 'cub-*' (a configuration with seeds: all its runs)",
  );
}

/** Loads and validates a sweep file, keeping the configurations that `--only` names. */
export async function loadSweep(file: string, flags: OnlyFlag): Promise<Sweep> {
  const sweep = await loadSweepFile(file);
  if (flags.only === undefined) return sweep;
  const patterns = flags.only
    .split(',')
    .map((pattern) => pattern.trim())
    .filter(Boolean);
  if (patterns.length === 0) throw new CliError(`--only '${flags.only}' names no configuration`, 2);
  const { sweep: selected, unmatched } = selectConfigurations(sweep, patterns);
  if (unmatched.length > 0) {
    const quoted = (names: readonly string[]) => names.map((name) => `'${name}'`).join(', ');
    throw new CliError(
      `--only: no configuration of ${file} matches ${quoted(unmatched)} (it has ${quoted(sweep.configurations.map((c) => c.name))})`,
      2,
    );
  }
  return selected;
}

/** Shown by `sweep list` and the Temporal UI without decoding the input. */
export function sweepMemo(sweep: Sweep): Record<string, unknown> {
  return { sweep: sweep.name, configurations: sweep.configurations.length };
}

export interface SweepRunFlags {
  parallelism: number;
  heartbeatTimeout?: string;
}

/** How a sweep started on a cluster runs: `sweep start` and `schedule create`. */
export function addSweepRunOptions(command: Command): Command {
  return command
    .option('--parallelism <n>', 'configurations run at once', positiveInt, 2)
    .option(
      '--heartbeat-timeout <duration>',
      "how long a stage's worker may go silent before it counts as lost and the stage is retried on another, e.g. 30s (default: 2m)",
    );
}

/** The sweep workflow's input for a validated sweep and the flags of addSweepRunOptions. */
export function sweepInput(sweep: Sweep, queues: TaskQueues, flags: SweepRunFlags): SweepInput {
  // Stages heartbeat every few seconds; a shorter timeout would take a busy worker for a lost one.
  const heartbeatTimeout = flags.heartbeatTimeout
    ? durationMs('--heartbeat-timeout', flags.heartbeatTimeout, 5000)
    : undefined;
  return { sweep, queues, parallelism: flags.parallelism, ...(heartbeatTimeout ? { heartbeatTimeout } : {}) };
}
