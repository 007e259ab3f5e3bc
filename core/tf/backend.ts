import * as tf from '@tensorflow/tfjs';
import type { ComputeRuntime } from '../util/compute-record';
import { InputError } from '../util/errors';
import { hardwareDescription } from '../util/machine';
import '@tensorflow/tfjs-backend-wasm';
import { findWebgpuAdapter, type WebgpuAdapterStatus } from './webgpu-adapter';

export const BACKENDS = ['webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

/**
 * The project's own tfjs flag: on webgpu, the head's large products go to the register-tiled kernel
 * (core/method/matmul-webgpu.ts). Off: on an H200 the kernel ran the products 1.1-2.2x faster than tfjs',
 * but the step no faster (bench/NOTES.md, head, session 8).
 */
export const TILED_MATMUL_FLAG = 'INFODISENT_WEBGPU_TILED_MATMUL';
tf.env().registerFlag(TILED_MATMUL_FLAG, () => false);

/** tfjs flags as NAME=VALUE,... (VALUE true, false or a number); errors name `source` and the entry. */
export function parseTfFlags(text: string, source: string): Record<string, boolean | number> {
  const flags: Record<string, boolean | number> = {};
  for (const entry of text.split(',').filter(Boolean)) {
    const match = /^([A-Za-z0-9_]+)=(true|false|-?\d+(?:\.\d+)?)$/.exec(entry.trim());
    if (!match)
      throw new InputError(`${source}: '${entry}' is not NAME=VALUE with VALUE true, false or a number`);
    flags[match[1]!] = match[2] === 'true' ? true : match[2] === 'false' ? false : Number(match[2]);
  }
  return flags;
}

/** Sets tfjs flags; one that tfjs does not know fails with an InputError naming `source`. */
export function applyTfFlags(flags: Record<string, boolean | number>, source: string): void {
  for (const [name, value] of Object.entries(flags)) {
    try {
      tf.env().set(name, value);
    } catch (error) {
      throw new InputError(`${source}: ${(error as Error).message}`);
    }
  }
}

let webgpuStatus: WebgpuAdapterStatus | undefined;

/** The adapter the webgpu backend runs on, or why it has none; undefined until the backend was tried. */
export function webgpuAdapterStatus(): WebgpuAdapterStatus | undefined {
  return webgpuStatus;
}

/** Whether the registered webgpu backend runs on a software adapter: `auto` then passes it over. */
function webgpuIsSoftware(): boolean {
  return webgpuStatus?.found === true && webgpuStatus.software;
}

/**
 * Dawn toggles to enable, from INFODISENT_DAWN_TOGGLES (comma-separated), e.g. skip_validation (less CPU
 * work per dispatch), disable_robustness (no index clamping in shaders) or disable_workgroup_init; none by
 * default (those three made the head's step no faster on an H200). Dawn's list: src/dawn/native/Toggles.cpp.
 */
function dawnToggles(): string[] {
  const value = process.env.INFODISENT_DAWN_TOGGLES ?? '';
  const toggles = value.split(',').filter(Boolean);
  const bad = toggles.find((toggle) => !/^[a-z0-9_]+$/.test(toggle));
  if (bad !== undefined)
    throw new InputError(
      `INFODISENT_DAWN_TOGGLES: '${bad}' is not a Dawn toggle name (lower-case words joined by '_')`,
    );
  return toggles;
}

/**
 * Registers the webgpu backend over Dawn (the `webgpu` package); false where no adapter exists, or where
 * the only one is a software rasteriser (e.g. lavapipe) and `allowSoftware` is not set: chosen
 * automatically, that would be far slower than wasm.
 */
async function registerWebgpu(allowSoftware: boolean): Promise<boolean> {
  const { status, gpu } = await findWebgpuAdapter(dawnToggles());
  webgpuStatus = status;
  if (!status.found || (status.software && !allowSoftware)) return false;
  try {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    require('@tensorflow/tfjs-backend-webgpu');
    return true;
  } catch (error) {
    webgpuStatus = { found: false, reason: `tfjs' webgpu backend failed: ${(error as Error).message}` };
    return false;
  }
}

/** The package that registered the 'tensorflow' backend, where one did. */
let tensorflowPackage: string | undefined;

/** tfjs-node or tfjs-node-gpu register the 'tensorflow' backend when the user has installed one. */
function registerTensorflow(): boolean {
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require(name);
      tensorflowPackage = name;
      return true;
    } catch {
      // not installed: the next candidate
    }
  }
  return false;
}

async function tryBackend(name: BackendName, forced: boolean): Promise<boolean> {
  if (name === 'webgpu') {
    if (tf.findBackendFactory('webgpu')) {
      if (webgpuIsSoftware() && !forced) return false;
    } else if (!(await registerWebgpu(forced))) return false;
  }
  if (name === 'tensorflow' && !tf.findBackendFactory('tensorflow') && !registerTensorflow()) return false;
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/** The tfjs backend in use and what it computes on (the GPU for webgpu and tfjs-node-gpu), for compute records. */
export function tfjsRuntime(): ComputeRuntime {
  const backend = tf.getBackend();
  const onGpu =
    backend === 'webgpu' || (backend === 'tensorflow' && tensorflowPackage?.endsWith('-gpu') === true);
  const adapter = webgpuStatus?.found ? webgpuStatus.description : undefined;
  return { name: `tfjs ${backend}`, hardware: hardwareDescription(onGpu, adapter) };
}

/**
 * Selects the tfjs backend: the forced one, or the first that starts in the order webgpu (a hardware
 * adapter only), tensorflow, wasm, cpu; then sets the tfjs flags INFODISENT_TF_FLAGS lists.
 * Returns the name actually in use, which every result records.
 */
export async function selectBackend(choice: BackendChoice = 'auto'): Promise<BackendName> {
  if (choice !== 'auto' && tf.getBackend() === choice) return choice;
  const candidates = choice === 'auto' ? BACKENDS : [choice];
  for (const name of candidates) {
    if (await tryBackend(name, choice !== 'auto')) {
      await tf.ready();
      // Set once the backend is registered: tfjs registers its backend flags (WEBGPU_*) with it.
      applyTfFlags(
        parseTfFlags(process.env.INFODISENT_TF_FLAGS ?? '', 'INFODISENT_TF_FLAGS'),
        'INFODISENT_TF_FLAGS',
      );
      return name;
    }
  }
  throw new Error(
    choice === 'auto'
      ? 'no tfjs backend could start (tried webgpu, tensorflow, wasm, cpu)'
      : `tfjs backend '${choice}' is not available on this machine (choose one of auto, ${BACKENDS.join(', ')})`,
  );
}
