// A CLIP folder as the trainer's and generator's ImageEncoder: bytes -> decode -> CLIPImageProcessor's pixels ->
// the frozen tower's feature.

import type { ImageFeatureChoice } from '../image-prompt.js';
import type { ImageEncoder } from '../vision-features.js';
import { clipFeatureDim, clipImageFeatures, type ClipVisionTower, disposeClipVisionTower, loadClipVisionTower } from './clip-vision.js';
import { clipPixels, decodeRgb } from './preprocess.js';

export interface ClipImageEncoder extends ImageEncoder {
  tower: ClipVisionTower;
  /** CLIPImageProcessor's pixel tensor [3, S, S] for one image's bytes. */
  pixels(bytes: Uint8Array, name: string): Promise<Float32Array>;
  dispose(): void;
}

export function loadImageEncoder(dir: string): ClipImageEncoder {
  const tower = loadClipVisionTower(dir);
  const pixels = async (bytes: Uint8Array, name: string) => clipPixels(await decodeRgb(bytes, name), tower.preprocess);
  return {
    tower,
    record: tower.record,
    pixels,
    featureDim: (feature: ImageFeatureChoice) => clipFeatureDim(tower, feature),
    async encode(images: Uint8Array[], feature: ImageFeatureChoice, names: string[]): Promise<Float32Array[]> {
      const batch: Float32Array[] = [];
      for (let i = 0; i < images.length; i++) batch.push(await pixels(images[i], names[i] ?? `image ${i + 1}`));
      return clipImageFeatures(tower, batch, feature);
    },
    dispose: () => disposeClipVisionTower(tower),
  };
}
