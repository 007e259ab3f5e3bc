#!/usr/bin/env node
/**
 * `infodisent doctor`'s checks of a machine's devices (core/diagnostics/checks.ts: the machine, the tfjs
 * backend, onnxruntime's providers, the rate images are prepared at), for the GPU machine: the CLI loads Temporal's and the S3 client's
 * packages, which bench/gpu-pack.sh does not pack. Exits 1 when a check fails.
 *
 *   .gpu/bin/node dist/bench/gpu-doctor.js [BACKEND]   (default webgpu)
 */
import {
  type Check,
  checkImagePreparation,
  checkLine,
  checkMachine,
  checkOnnxProviders,
  checkTfjs,
} from '../core/diagnostics/checks';
import type { BackendChoice } from '../core/tf/backend';
import { sizeLibuvPool } from '../infra/libuv-pool';

async function main(): Promise<void> {
  const backend = (process.argv[2] ?? 'webgpu') as BackendChoice;
  sizeLibuvPool();
  const checks: Check[] = [
    checkMachine(),
    ...(await checkTfjs(backend)),
    ...(await checkOnnxProviders()),
    ...(await checkImagePreparation()),
  ];
  for (const check of checks) process.stdout.write(`${checkLine(check)}\n`);
  if (checks.some((check) => check.status === 'fail')) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
