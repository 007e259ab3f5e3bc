import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** What Dawn (the `webgpu` package) finds on this machine. */
export type WebgpuAdapterStatus =
  | { found: true; description: string; software: boolean }
  | { found: false; reason: string };

export interface DawnAdapter {
  status: WebgpuAdapterStatus;
  /** Dawn's GPU object (navigator.gpu) where an adapter was found. */
  gpu?: unknown;
}

interface AdapterInfo {
  vendor?: string;
  architecture?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

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

function describeAdapter(info: AdapterInfo | undefined): string {
  const parts = [info?.description, info?.vendor, info?.architecture].filter((part) => part);
  return parts.length > 0 ? [...new Set(parts)].join(', ') : 'an unnamed adapter';
}

async function requestAdapter(toggles: string[]): Promise<DawnAdapter> {
  if (!vulkanLoaderPresent())
    return {
      status: { found: false, reason: 'no Vulkan loader (libvulkan.so.1), which Dawn needs on Linux' },
    };
  try {
    const { create, globals } = require('webgpu') as {
      create: (flags: string[]) => unknown;
      globals: Record<string, unknown>;
    };
    Object.assign(globalThis, globals);
    const gpu = create(toggles.length > 0 ? [`enable-dawn-features=${toggles.join(',')}`] : []) as {
      requestAdapter(): Promise<{ info?: AdapterInfo } | null>;
    };
    const adapter = await gpu.requestAdapter();
    if (!adapter)
      return { status: { found: false, reason: 'Dawn found no adapter (no Vulkan driver for a GPU)' } };
    const software = adapter.info?.isFallbackAdapter === true;
    return { status: { found: true, description: describeAdapter(adapter.info), software }, gpu };
  } catch (error) {
    return { status: { found: false, reason: `the webgpu package failed: ${(error as Error).message}` } };
  }
}

const requested = new Map<string, Promise<DawnAdapter>>();

/**
 * Dawn's adapter, requested once per thread and set of Dawn toggles: the webgpu tfjs backend runs on it,
 * and onnxruntime's own WebGPU provider (a Dawn of its own, which says nothing of its adapter) is passed
 * over by `auto` where this one is a software rasteriser.
 */
export function findWebgpuAdapter(toggles: string[] = []): Promise<DawnAdapter> {
  const key = toggles.join(',');
  let adapter = requested.get(key);
  if (!adapter) {
    adapter = requestAdapter(toggles);
    requested.set(key, adapter);
  }
  return adapter;
}
