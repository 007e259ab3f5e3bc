/**
 * Runs extractFeaturesInProcesses in a worker thread, as a stage thread does, so a test can end the
 * thread midway (test/extract-processes.test.ts). workerData: the options less the store, plus storeUrl.
 * Posts each progress report.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  extractFeaturesInProcesses,
  type ProcessExtractionOptions,
} from '../../core/features/extract-processes';
import { openStore } from '../../core/store/open-store';

const options = workerData as Omit<ProcessExtractionOptions, 'store' | 'onProgress'>;
void extractFeaturesInProcesses({
  ...options,
  store: openStore(options.storeUrl),
  onProgress: (progress) => parentPort!.postMessage(progress),
});
