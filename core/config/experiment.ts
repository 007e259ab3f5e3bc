import { readFile } from 'node:fs/promises';
import picomatch from 'picomatch';
import { z } from 'zod';
import { BUNDLED_BACKBONE_NAMES } from '../backbones/registry';
import { DATASET_FORMATS, type DatasetFormat } from '../data/loaders';
import { PartsDatasetOptionsSchema } from '../data/parts-dataset';
import { PRESETS, type PresetName } from '../data/preprocess';
import { FEATURE_DTYPES } from '../features/feature-set';
import { BACKENDS } from '../tf/backend';

const PositiveInt = z.number().int().positive();
const ParameterGroupSchema = z
  .object({ learningRate: z.number().positive(), weightDecay: z.number().min(0).default(0) })
  .strict();

const TrainingFields = {
  epochs: PositiveInt,
  batchSize: PositiveInt.default(64),
  schedule: z.enum(['constant', 'cosine']).default('cosine'),
  validationFraction: z.number().min(0).max(0.5).default(0),
  patience: z.number().int().min(0).default(0),
  checkpointEvery: z.number().int().min(0).default(10),
};

export const BaselineHeadSchema = z
  .object({ ...TrainingFields, weight: ParameterGroupSchema, bias: ParameterGroupSchema })
  .strict();

export const InfoDisentHeadSchema = z
  .object({
    ...TrainingFields,
    rotation: ParameterGroupSchema,
    weight: ParameterGroupSchema,
    bias: ParameterGroupSchema,
    /** Dynamic trivialisation period in steps (0: U = expm(A - A^T) throughout). */
    foldEvery: z.number().int().min(0).default(1),
  })
  .strict();

const DatasetName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, ".", "_" and "-"');

/** The fields of a dataset read from files in `format`'s layout. */
function datasetFileFields(format: DatasetFormat) {
  return {
    name: DatasetName.default(format),
    root: z
      .string()
      .min(1)
      .describe("Folder in the dataset's official layout, on every worker that extracts it."),
    skipInvalid: z
      .boolean()
      .default(false)
      .describe('Record unreadable or missing files in the results instead of failing.'),
  };
}

export const DatasetSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('parts'),
      name: DatasetName.default('parts'),
      generator: PartsDatasetOptionsSchema,
    })
    .strict(),
  ...DATASET_FORMATS.filter((format) => format !== 'class-folders').map((format) =>
    z.object({ kind: z.literal(format), ...datasetFileFields(format) }).strict(),
  ),
  z
    .object({
      kind: z.literal('class-folders'),
      ...datasetFileFields('class-folders'),
      testFraction: z
        .number()
        .gt(0)
        .lt(1)
        .optional()
        .describe(
          'For class folders directly under the root (no train/ and test/): the share of each class held out ' +
            'for test, chosen by a hash of each file name, so the same on every worker and for every seed.',
        ),
    })
    .strict(),
]);

/**
 * A backbone bundled with the dependencies (by `name` alone), or an ONNX export (`file`, with the
 * torchvision `preset` its images are prepared with).
 */
export const BackboneSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .describe("A bundled backbone ('nsfwjs-mobilenet-v2'), or the name of an ONNX one."),
    file: z
      .string()
      .min(1)
      .optional()
      .describe('An ONNX export cut at the last feature map (infra/export_backbones.py).'),
    preset: z
      .enum(Object.keys(PRESETS) as [PresetName, ...PresetName[]])
      .optional()
      .describe("The torchvision evaluation transform the ONNX backbone's images are prepared with."),
    output: z
      .string()
      .min(1)
      .optional()
      .describe(
        'The ONNX graph value to take as the feature map: for a model with several outputs, or one not cut at its last feature map (the model is cut there).',
      ),
    provider: z
      .enum(['auto', 'cpu', 'webgpu', 'cuda'])
      .default('auto')
      .describe(
        "onnxruntime's execution provider; auto: cuda where installed, then a hardware WebGPU, then cpu.",
      ),
  })
  .strict()
  .superRefine((backbone, ctx) => {
    if (backbone.file === undefined && !(BUNDLED_BACKBONE_NAMES as string[]).includes(backbone.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['name'],
        message: `unknown backbone '${backbone.name}': bundled backbones are ${BUNDLED_BACKBONE_NAMES.map((n) => `'${n}'`).join(', ')}; give 'file' for an ONNX model`,
      });
    }
    if (backbone.file === undefined && backbone.output !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['output'],
        message: "'output' names a value of an ONNX backbone's 'file'",
      });
    }
    if (backbone.file !== undefined && backbone.preset === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['preset'],
        message: 'an ONNX backbone needs the preprocessing preset it was trained with',
      });
    }
  });

/** The explain stage's settings beyond the paper's fixed counts. */
export const ExplainSettingsSchema = z
  .object({
    /**
     * Test images re-extracted under input noise for the stability metric, spread over the classes; each
     * costs a backbone pass, so a small number keeps the stage cheap (0: no stability).
     */
    stabilityImages: z.number().int().min(0).default(20),
    /** Standard deviation of that Gaussian noise, in pixel values scaled to [0, 1]. */
    stabilityNoise: z.number().positive().default(0.05),
  })
  .strict();

/** How extracted features are stored: 'float16' halves the store and its reads (part of the cache key). */
export const FeaturesSchema = z
  .object({
    dtype: z
      .enum(FEATURE_DTYPES)
      .default('float32')
      .describe('float16 halves the store and its reads (part of the cache key).'),
    /** Images per backbone call; default: 64 on a GPU execution provider, 16 on the CPU. Not part of the cache key. */
    batchSize: PositiveInt.optional(),
    processes: PositiveInt.max(16)
      .default(1)
      .describe(
        'Processes extracting at once, each with its own backbone and a share of the shards and preprocessing ' +
          "threads. onnxruntime's WebGPU provider runs one batch at a time per process: 2-3 keep a GPU busier. " +
          'Not part of the cache key.',
      ),
  })
  .strict();

/** One head's figures as a publication printed them (accuracy in %, RV x100, channels for 95%: their mean). */
const ReportedHeadSchema = z
  .object({
    top1: z.number().min(0).max(100).optional(),
    top5: z.number().min(0).max(100).optional(),
    rv: z.number().min(0).max(100).optional(),
    channels95: z.number().positive().optional(),
  })
  .strict();

/** Published figures for a configuration, which the paper's tables print beside this run's. */
export const ReportedSchema = z
  .object({
    /** Where they come from, e.g. "InfoDisent paper, Table 8"; named in the tables' captions. */
    source: z.string().min(1),
    baseline: ReportedHeadSchema.optional(),
    infodisent: ReportedHeadSchema.optional(),
  })
  .strict();

/** The name of a sweep or a configuration (part of workflow ids and store keys). */
const LowercaseName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lowercase letters, digits, ".", "_" and "-"');

export const ConfigurationSchema = z
  .object({
    name: LowercaseName,
    /** Default 0. */
    seed: z.number().int().optional(),
    /**
     * Runs the configuration once per seed, as configurations `<name>-seed<seed>` that the paper's tables
     * print as one row, mean ± standard deviation (instead of `seed`).
     */
    seeds: z
      .array(z.number().int())
      .min(2)
      .refine((seeds) => new Set(seeds).size === seeds.length, 'seeds repeat')
      .optional(),
    /** Set by the `seeds` expansion: the configuration this run repeats. */
    repeatOf: LowercaseName.optional(),
    backend: z
      .enum(['auto', ...BACKENDS])
      .default('auto')
      .describe(
        'tfjs backend the heads train on; auto: webgpu on a hardware adapter, tensorflow, wasm, cpu.',
      ),
    dataset: DatasetSchema,
    backbone: BackboneSchema,
    features: FeaturesSchema.default({ dtype: 'float32', processes: 1 }),
    heads: z.object({ baseline: BaselineHeadSchema, infodisent: InfoDisentHeadSchema }).strict(),
    explain: ExplainSettingsSchema.prefault({}),
    reported: ReportedSchema.optional(),
  })
  .strict();

type ParsedConfiguration = z.output<typeof ConfigurationSchema>;
/** A configuration as the pipeline runs it: one seed (`seeds` expanded into one configuration each). */
export type Configuration = Omit<ParsedConfiguration, 'seed' | 'seeds'> & { seed: number };

/** One configuration per seed of `seeds`; a configuration without them as it is. */
function expandSeeds({ seeds, seed = 0, ...configuration }: ParsedConfiguration): Configuration[] {
  return seeds
    ? seeds.map((seed) => ({
        ...configuration,
        name: `${configuration.name}-seed${seed}`,
        seed,
        repeatOf: configuration.name,
      }))
    : [{ ...configuration, seed }];
}

export const SweepSchema = z
  .object({
    /** An editor's JSON Schema for the file (experiments/schema/sweep.schema.json); ignored by the pipeline. */
    $schema: z.string().optional(),
    name: LowercaseName,
    description: z.string().optional(),
    configurations: z.array(ConfigurationSchema).min(1),
  })
  .strict()
  .superRefine((sweep, ctx) => {
    const seen = new Set<string>();
    sweep.configurations.forEach((configuration, index) => {
      if (configuration.seeds && configuration.seed !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['configurations', index, 'seeds'],
          message: 'give either seed or seeds, not both',
        });
      }
      if (configuration.seeds && configuration.repeatOf) {
        ctx.addIssue({
          code: 'custom',
          path: ['configurations', index, 'seeds'],
          message: `'${configuration.name}' already repeats '${configuration.repeatOf}': give seeds only once`,
        });
      }
      for (const { name } of expandSeeds(configuration)) {
        if (seen.has(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['configurations', index, 'name'],
            message: `duplicate configuration name '${name}'`,
          });
        }
        seen.add(name);
      }
    });
  })
  .transform(({ configurations, $schema: _schema, ...sweep }) => ({
    ...sweep,
    configurations: configurations.flatMap(expandSeeds),
  }));

export type Sweep = z.output<typeof SweepSchema>;
export type BaselineHeadConfig = z.output<typeof BaselineHeadSchema>;
export type InfoDisentHeadConfig = z.output<typeof InfoDisentHeadSchema>;
export type Reported = z.output<typeof ReportedSchema>;

/**
 * The sweep with only the configurations that `patterns` name: names or globs (`cub-*`), where a `seeds`
 * configuration's own name selects all its runs. `unmatched`: the patterns that select nothing.
 */
export function selectConfigurations(
  sweep: Sweep,
  patterns: readonly string[],
): { sweep: Sweep; unmatched: string[] } {
  const selectors = patterns.map((pattern) => {
    const matches = picomatch(pattern);
    return (c: Configuration) => matches(c.name) || (c.repeatOf !== undefined && matches(c.repeatOf));
  });
  return {
    sweep: {
      ...sweep,
      configurations: sweep.configurations.filter((c) => selectors.some((select) => select(c))),
    },
    unmatched: patterns.filter((_, i) => !sweep.configurations.some(selectors[i]!)),
  };
}

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (out, part) =>
      typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part),
    '',
  );
}

/** Validates a sweep document; every problem names its field, e.g. `configurations[0].backbone.name`. */
export function parseSweep(document: unknown, source = '<inline>'): Sweep {
  const result = SweepSchema.safeParse(document);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((issue) => {
        const keys =
          issue.code === 'unrecognized_keys' ? ` (${issue.keys.map((k) => `'${k}'`).join(', ')})` : '';
        return `${fieldPath(issue.path) || '(root)'}: ${issue.message}${keys}`;
      }),
    );
  }
  return result.data;
}

export async function loadSweepFile(file: string): Promise<Sweep> {
  return parseSweep(await readSweepDocument(file), file);
}

/** A sweep file's JSON as written (before validation); a file that cannot be read or parsed is a ConfigError. */
export async function readSweepDocument(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot read the file: ${(error as Error).message}`]);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(file, [`not valid JSON: ${(error as Error).message}`]);
  }
}

/**
 * The sweep file's JSON Schema (draft 2020-12), from the same zod schema that validates it: editors that
 * read a file's "$schema" complete and check sweep files as they are typed. The cross-field checks (seeds,
 * duplicate names, an ONNX backbone's preset) stay the CLI's own.
 */
export function sweepJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(SweepSchema, { io: 'input', target: 'draft-2020-12' });
  return {
    $schema: schema.$schema,
    title: 'infodisent sweep',
    description: 'A sweep of dataset x backbone configurations (infodisent config validate checks a file).',
    ...schema,
  };
}
