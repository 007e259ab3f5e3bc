/**
 * A sweep written from the folders and models a researcher has (`infodisent config new`): one configuration
 * per dataset x backbone, each dataset read in the layout found in its folder, each ONNX backbone with the
 * preset its export recorded, and the heads trained as a template configuration trains them.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { BUNDLED_BACKBONE_NAMES } from '../backbones/registry';
import type { DatasetLayout } from '../data/loaders/detect';
import { PRESETS, type PresetName } from '../data/preprocess';
import { InputError } from '../util/errors';
import type { BackboneSchema, ConfigurationSchema, DatasetSchema } from './experiment';

type BackboneDocument = z.input<typeof BackboneSchema>;
type DatasetDocument = z.input<typeof DatasetSchema>;
type ConfigurationDocument = z.input<typeof ConfigurationSchema>;

/** What infra/export_backbones.py writes beside each model (`<name>.json`) that a configuration needs. */
const ExportSidecarSchema = z.object({
  arch: z.string(),
  preset: z.enum(Object.keys(PRESETS) as [PresetName]),
});

/** Lowercase letters, digits and '-': a name (part) as sweep and configuration names take it. */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/**
 * A backbone for a configuration: a bundled one by name, or an ONNX file with the preset that the sidecar
 * infra/export_backbones.py wrote beside it records (else `preset`), named after the file.
 */
export async function backboneDocument(backbone: string, preset?: PresetName): Promise<BackboneDocument> {
  if ((BUNDLED_BACKBONE_NAMES as string[]).includes(backbone)) return { name: backbone };
  const file = path.resolve(backbone);
  if (path.extname(file).toLowerCase() !== '.onnx')
    throw new InputError(
      `${backbone}: neither an ONNX file nor a bundled backbone (${BUNDLED_BACKBONE_NAMES.join(', ')})`,
    );
  const sidecarFile = `${file.slice(0, -'.onnx'.length)}.json`;
  const text = await readFile(sidecarFile, 'utf8').catch(() => undefined);
  const name = slug(path.basename(file, path.extname(file)));
  if (text === undefined) {
    if (preset) return { name, file, preset };
    throw new InputError(
      `${file}: no ${path.basename(sidecarFile)} beside it (infra/export_backbones.py writes one) to say which preprocessing it takes: give --preset (${Object.keys(PRESETS).join(', ')})`,
    );
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${sidecarFile}: not valid JSON: ${(error as Error).message}`);
  }
  const sidecar = ExportSidecarSchema.safeParse(document);
  if (!sidecar.success)
    throw new InputError(
      `${sidecarFile}: ${sidecar.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return { name, file, preset: sidecar.data.preset };
}

/** The short names the paper's sweep gives its datasets; a class-folder tree is named after its folder. */
const DATASET_NAMES: Partial<Record<DatasetLayout['kind'], string>> = {
  cub: 'cub',
  'stanford-cars': 'cars',
  'stanford-dogs': 'dogs',
  imagenet: 'imagenet',
};

export interface NewSweepInput {
  name: string;
  datasets: readonly { root: string; layout: DatasetLayout }[];
  backbones: readonly BackboneDocument[];
  /** The heads' settings, as a configuration gives them (checked with the rest of the sweep). */
  heads: unknown;
  /** The share of each class held out for test in a tree of class folders without a split. */
  testFraction: number;
  /** The editor's JSON Schema for the file ("$schema"). */
  schema?: string;
}

/** The sweep document: every dataset with every backbone, named `<dataset>-<backbone>`. */
export function newSweepDocument(input: NewSweepInput): Record<string, unknown> {
  const names = new Set<string>();
  const datasets = input.datasets.map(({ root, layout }): DatasetDocument => {
    const base = DATASET_NAMES[layout.kind] ?? (slug(path.basename(path.resolve(root))) || 'images');
    let name = base;
    for (let n = 2; names.has(name); n++) name = `${base}-${n}`;
    names.add(name);
    return {
      kind: layout.kind,
      name,
      root: path.resolve(root),
      ...(layout.unsplit ? { testFraction: input.testFraction } : {}),
    } as DatasetDocument;
  });
  const configurations = datasets.flatMap((dataset) =>
    input.backbones.map(
      (backbone): ConfigurationDocument => ({
        name: `${dataset.name}-${backbone.name}`.toLowerCase(),
        seed: 0,
        backend: 'auto',
        dataset,
        backbone,
        heads: input.heads as ConfigurationDocument['heads'],
      }),
    ),
  );
  return {
    ...(input.schema ? { $schema: input.schema } : {}),
    name: input.name,
    description: `${configurations.length === 1 ? 'One configuration' : `${configurations.length} configurations`}: ${datasets.length} x ${input.backbones.length} (datasets x backbones), written by infodisent config new.`,
    configurations,
  };
}
