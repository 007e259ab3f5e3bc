import { execFile } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../infra/paths';

/** The built CLI, as users run it. */
export const CLI = path.join(repoRoot(), 'dist', 'client', 'main.js');

export interface CliOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment without any setting a developer's shell might leak into the CLI under test. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(TEMPORAL_|INFODISENT_|AWS_)/.test(name)),
  );
  return { ...env, ...extra };
}

/** Runs the CLI from the repository root; resolves with its exit code and output, whatever they are. */
export function runCli(
  args: readonly string[],
  env: Record<string, string> = {},
  timeout = 120_000,
): Promise<CliOutcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: repoRoot(), env: cleanEnv(env), timeout },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
