import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../infra/paths';

/** The Python that has the reference dependencies: the project's .venv (made by .ci/run), else python3. */
export function referencePython(): string {
  const venv = path.join(repoRoot(), '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

/** Runs reference/<script> (by the reference Python unless told) with a JSON document on stdin and returns its JSON stdout. */
export function runPythonReference<T>(script: string, input: unknown, python = referencePython()): T {
  const file = path.join(repoRoot(), 'reference', script);
  const stdout = execFileSync(python, [file], {
    input: JSON.stringify(input),
    maxBuffer: 1 << 30,
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as T;
}

/**
 * The Python for references that need PyTorch's packages (`modules`, e.g. torchvision): INFODISENT_TORCH_PYTHON,
 * else the reference Python; with the reason instead where they cannot be imported (the caller skips).
 */
export function torchPython(modules: readonly string[]): { python: string } | { skip: string } {
  const python = process.env['INFODISENT_TORCH_PYTHON'] ?? referencePython();
  const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  return probe.status === 0
    ? { python }
    : {
        skip: `${python} cannot import ${modules.join(', ')} (reference/requirements-torch.txt installs them)`,
      };
}
