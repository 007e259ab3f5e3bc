import type { Command } from 'commander';
import { loadSweepFile, type Sweep, selectConfigurations } from '../core/config/experiment';
import { CliError } from './output';

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
