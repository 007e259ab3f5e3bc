import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../infra/paths';

/** The Python that has the reference dependencies: the project's .venv (made by .ci/run), else python3. */
export function referencePython(): string {
  const venv = path.join(repoRoot(), '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

/** Runs reference/<script> with a JSON document on stdin and returns its JSON stdout. */
export function runPythonReference<T>(script: string, input: unknown): T {
  const file = path.join(repoRoot(), 'reference', script);
  const stdout = execFileSync(referencePython(), [file], {
    input: JSON.stringify(input),
    maxBuffer: 1 << 30,
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as T;
}
