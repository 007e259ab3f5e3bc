/** One benchmark measurement, with the figure it is compared against when there is one. */
export interface BenchRow {
  case: string;
  metric: string;
  unit: string;
  value: number;
  /** What reference_value is (implementation, machine, conditions), or why there is none. */
  reference: string;
  reference_value: number | null;
  /** value / reference_value, when both exist. */
  ratio: number | null;
  backend: string;
  machine: string;
}
