import { type ChildProcess, execFile, spawn } from 'node:child_process';
import os from 'node:os';
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

/** An `infodisent worker` process, once it says it serves its queues. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Its identity in Temporal: pid@host. */
  identity: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `infodisent worker ARGS` and resolves once it serves; rejects with its output if it exits first. */
export async function startWorker(
  args: readonly string[],
  env: Record<string, string>,
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', ...args], {
    cwd: repoRoot(),
    env: cleanEnv(env),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('serving')) resolve();
    });
    void exited.then(() => reject(new Error(`the worker exited early:\n${stderr}`)));
  });
  return { child, identity: `${child.pid}@${os.hostname()}`, stderr: () => stderr, exited };
}

/** Runs the CLI until its stderr matches `pattern` (then stops it) or `timeout` passes; resolves with its stderr. */
export function cliStderrUntil(
  args: readonly string[],
  env: Record<string, string>,
  pattern: RegExp,
  timeout = 60_000,
): Promise<string> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: repoRoot(),
    env: cleanEnv(env),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve) => {
    const stop = () => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(stderr);
    };
    const timer = setTimeout(stop, timeout);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (pattern.test(stderr)) stop();
    });
    child.once('exit', stop);
  });
}
