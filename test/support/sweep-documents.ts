/** The smallest valid sweep document: one parts configuration, one epoch per head; `extra` adds fields. */
export function minimalSweepDocument(extra: Record<string, unknown> = {}) {
  return {
    name: 'x',
    configurations: [
      {
        name: 'c',
        dataset: { kind: 'parts', generator: { seed: 1 } },
        backbone: { name: 'nsfwjs-mobilenet-v2' },
        ...extra,
        heads: {
          baseline: { epochs: 1, weight: { learningRate: 0.1 }, bias: { learningRate: 0.1 } },
          infodisent: {
            epochs: 1,
            rotation: { learningRate: 0.1 },
            weight: { learningRate: 0.1 },
            bias: { learningRate: 0.1 },
          },
        },
      },
    ],
  };
}
