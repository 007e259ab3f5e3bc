import type { Backbone } from './backbone';
import { loadNsfwjsMobileNetV2 } from './nsfwjs-mobilenet';

/** Backbones that ship with the project's dependencies and so load offline. */
export const BUNDLED_BACKBONES = {
  'nsfwjs-mobilenet-v2': loadNsfwjsMobileNetV2,
} as const;

export type BundledBackboneName = keyof typeof BUNDLED_BACKBONES;
export const BUNDLED_BACKBONE_NAMES = Object.keys(BUNDLED_BACKBONES) as [
  BundledBackboneName,
  ...BundledBackboneName[],
];

export function loadBackbone(name: BundledBackboneName): Promise<Backbone> {
  return BUNDLED_BACKBONES[name]();
}
