import type { PresetName } from '../data/preprocess';
import { InputError } from '../util/errors';
import type { Backbone } from './backbone';
import { loadNsfwjsMobileNetV2 } from './nsfwjs-mobilenet';
import { loadOnnxBackbone, type OnnxProvider } from './onnx-backbone';

/** Backbones that ship with the project's dependencies and so load offline. */
export const BUNDLED_BACKBONES = {
  'nsfwjs-mobilenet-v2': loadNsfwjsMobileNetV2,
} as const;

export type BundledBackboneName = keyof typeof BUNDLED_BACKBONES;
export const BUNDLED_BACKBONE_NAMES = Object.keys(BUNDLED_BACKBONES) as [
  BundledBackboneName,
  ...BundledBackboneName[],
];

export interface BackboneSpec {
  name: string;
  /** An ONNX export cut at the last feature map (infra/export_backbones.py). */
  file?: string | undefined;
  preset?: PresetName | undefined;
  /** The graph value to take as the feature map, where it is not the model's one output. */
  output?: string | undefined;
  provider?: OnnxProvider | 'auto';
}

/** A bundled backbone by name, or an ONNX file with its preprocessing preset. */
export function openBackbone(spec: BackboneSpec): Promise<Backbone> {
  if (spec.file === undefined) {
    if (!(spec.name in BUNDLED_BACKBONES)) throw new InputError(`unknown backbone '${spec.name}'`);
    return BUNDLED_BACKBONES[spec.name as BundledBackboneName]();
  }
  if (spec.preset === undefined)
    throw new InputError(`backbone '${spec.name}': an ONNX file needs its preset`);
  return loadOnnxBackbone({
    file: spec.file,
    name: spec.name,
    preset: spec.preset,
    ...(spec.output === undefined ? {} : { output: spec.output }),
    provider: spec.provider ?? 'auto',
  });
}
