import { execFileSync } from 'node:child_process';
import os from 'node:os';

/** The CPU: its model and how many threads it runs. */
export function cpuDescription(): string {
  return `${os.cpus()[0]?.model.trim() ?? 'unknown CPU'} x${os.cpus().length}`;
}

let nvidiaGpus: string[] | undefined;

/** The NVIDIA GPUs nvidia-smi names, none where it is missing; asked once per thread. */
export function nvidiaGpuNames(): string[] {
  if (!nvidiaGpus) {
    try {
      nvidiaGpus = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 10_000,
      })
        .split('\n')
        .map((name) => name.trim())
        .filter(Boolean);
    } catch {
      nvidiaGpus = [];
    }
  }
  return nvidiaGpus;
}

/** A one-line description of this machine: CPU model and threads, and the GPUs nvidia-smi names. */
export function machineDescription(): string {
  const gpus = nvidiaGpuNames();
  return gpus.length > 0 ? `${cpuDescription()}; ${gpus.join(', ')}` : cpuDescription();
}

/**
 * What a runtime computes on, for compute records: the GPU where it runs on one (its name as nvidia-smi
 * gives it, else `adapter`, Dawn's description), else the CPU.
 */
export function hardwareDescription(onGpu: boolean, adapter?: string): string {
  if (!onGpu) return cpuDescription();
  const names = [...new Set(nvidiaGpuNames())];
  return names.length > 0 ? names.join(', ') : (adapter ?? 'an unnamed GPU');
}
