/** A dataset as the pipeline sees it, whatever its on-disk layout. */
export type Split = 'train' | 'test';

/** An annotated part, in pixel coordinates of the original image (x0,y0 inclusive, x1,y1 exclusive). */
export interface PartBox {
  part: string;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** True for a part placed as clutter that is not evidence for the item's class (generated datasets). */
  distractor?: boolean;
}

/** An axis-aligned box in pixel coordinates of the original image (x0,y0 inclusive, x1,y1 exclusive). */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** An annotated part location (e.g. CUB's 15 parts), in pixel coordinates of the original image. */
export interface Keypoint {
  part: string;
  x: number;
  y: number;
  /** False where the annotator marked the part as not visible (its x,y are then meaningless). */
  visible: boolean;
}

export interface DatasetItem {
  /** Path relative to the manifest's root, '/'-separated. */
  path: string;
  label: number;
  split: Split;
  /** Ground-truth parts where the dataset has them. */
  parts?: PartBox[];
  /** Whole-object box where the dataset has one; the box enclosing all objects where it lists several. */
  bbox?: Box;
  /** Annotated part keypoints where the dataset has them (CUB: all 15 parts, visible or not). */
  keypoints?: Keypoint[];
  /**
   * The file's size in bytes (datasets read from disk): in the features' cache key, so another tree with the
   * same file names, or an image replaced under its name, is extracted anew.
   */
  bytes?: number;
}

export interface DatasetManifest {
  name: string;
  /** Absolute folder that item paths are relative to. */
  root: string;
  classes: string[];
  /** The dataset's own class identifiers, parallel to `classes`, where names alone are ambiguous (WordNet ids). */
  classIds?: string[];
  items: DatasetItem[];
  /**
   * What determines a generated dataset's images beyond their names (a hash of its generator's version and
   * settings): in the features' cache key, as `bytes` is for datasets read from disk.
   */
  contentSource?: string;
}

export function itemsOfSplit(manifest: DatasetManifest, split: Split): DatasetItem[] {
  return manifest.items.filter((item) => item.split === split);
}
