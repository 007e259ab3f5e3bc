import { execFileSync } from 'node:child_process';
import os from 'node:os';

/** A one-line description of this machine for benchmark rows: CPU model and cores, and the GPU if any. */
export function machineDescription(): string {
  const cpu = `${os.cpus()[0]?.model.trim() ?? 'unknown CPU'} x${os.cpus().length}`;
  try {
    const gpu = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return gpu ? `${cpu}; ${gpu.split('\n').join(', ')}` : cpu;
  } catch {
    return cpu;
  }
}
