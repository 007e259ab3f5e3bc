import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export const BACKENDS = ['webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

/** Dawn needs the Vulkan loader on Linux; without it, it only prints warnings and finds no adapter. */
function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = (process.env['LD_LIBRARY_PATH'] ?? '').split(':').filter(Boolean);
  if (dirs.some((dir) => existsSync(path.join(dir, 'libvulkan.so.1')))) return true;
  try {
    return execFileSync('ldconfig', ['-p'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).includes('libvulkan.so.1');
  } catch {
    return false;
  }
}

/** Registers the webgpu backend over Dawn (the `webgpu` package); false where no GPU adapter exists. */
async function registerWebgpu(): Promise<boolean> {
  if (!vulkanLoaderPresent()) return false;
  try {
    const { create, globals } = require('webgpu') as {
      create: (flags: string[]) => unknown;
      globals: Record<string, unknown>;
    };
    Object.assign(globalThis, globals);
    const gpu = create([]) as { requestAdapter(): Promise<unknown> };
    if (!(await gpu.requestAdapter())) return false;
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    require('@tensorflow/tfjs-backend-webgpu');
    return true;
  } catch {
    return false;
  }
}

/** tfjs-node or tfjs-node-gpu register the 'tensorflow' backend when the user has installed one. */
function registerTensorflow(): boolean {
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require(name);
      return true;
    } catch {
      // not installed: the next candidate
    }
  }
  return false;
}

async function tryBackend(name: BackendName): Promise<boolean> {
  if (name === 'webgpu' && !tf.findBackendFactory('webgpu') && !(await registerWebgpu())) return false;
  if (name === 'tensorflow' && !tf.findBackendFactory('tensorflow') && !registerTensorflow()) return false;
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/**
 * Selects the tfjs backend: the forced one, or the first that starts in the order webgpu, tensorflow, wasm, cpu.
 * Returns the name actually in use, which every result records.
 */
export async function selectBackend(choice: BackendChoice = 'auto'): Promise<BackendName> {
  if (choice !== 'auto' && tf.getBackend() === choice) return choice;
  const candidates = choice === 'auto' ? BACKENDS : [choice];
  for (const name of candidates) {
    if (await tryBackend(name)) {
      await tf.ready();
      return name;
    }
  }
  throw new Error(
    choice === 'auto'
      ? 'no tfjs backend could start (tried webgpu, tensorflow, wasm, cpu)'
      : `tfjs backend '${choice}' is not available on this machine (choose one of auto, ${BACKENDS.join(', ')})`,
  );
}
