import os from 'node:os';

/** What computed an artifact: the runtime ('onnxruntime webgpu', 'tfjs wasm') and its hardware. */
export interface ComputeRuntime {
  name: string;
  /** The GPU's name, or the CPU's model and threads (hardwareDescription). */
  hardware: string;
}

/**
 * How long an artifact (a split's features, a trained head) took to compute, and where: kept with it, so a
 * sweep that reuses it still reports what it cost, e.g. for a paper's statement of compute.
 */
export interface ComputeRecord extends ComputeRuntime {
  /** Wall seconds of the work, over the runs that did it (a training resumed from a checkpoint adds its own). */
  seconds: number;
  /**
   * What those seconds computed: images extracted, or training steps. Fewer images than the set holds where
   * the run finished shards an earlier one left: its rate is measured, the whole set's time follows from it.
   */
  items: number;
  host: string;
  finishedAt: string;
}

/** Items a second, where the record timed any. */
export function recordRate(record: ComputeRecord): number | null {
  return record.items > 0 && record.seconds > 0 ? record.items / record.seconds : null;
}

export function computeRecord(runtime: ComputeRuntime, seconds: number, items: number): ComputeRecord {
  return {
    name: runtime.name,
    hardware: runtime.hardware,
    seconds,
    items,
    host: os.hostname(),
    finishedAt: new Date().toISOString(),
  };
}
