// `adapter-studio vision-info` and `embed-image`: a CLIP folder's settings, and the feature the multi-modal
// adapter would read for some images (the frozen tower's output, as transformers computes it).

import { readFileSync } from 'node:fs';
import { describeFeature, parseFeatureChoice } from '../engine/image-prompt.js';
import { EngineError } from '../engine/errors.js';
import { clipVisionParameters } from '../engine/vision/clip-vision.js';
import { loadImageEncoder } from '../engine/vision/encoder.js';
import { startBackend } from './engine-commands.js';
import { flag, type IO, parseFlags, requireFlag } from './flags.js';

export const VISION_USAGE = `  vision-info --vision DIR [--json]                   a CLIP vision tower's config, preprocessing, parameters
  embed-image --vision DIR --image FILE [--image FILE ...] [--feature projected|class-tokens:L1,L2] [--json]
            the frozen tower's feature per image, in order (default "projected": CLIP's image_embeds,
            unnormalised); --json prints {"embeddings": [[...], ...]}
`;

export async function visionInfoCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { vision: 'string', json: 'boolean', backend: 'string' });
  await startBackend(flags, io);
  const encoder = loadImageEncoder(requireFlag(flags, 'vision'));
  try {
    const { config, preprocess, record } = encoder.tower;
    const D = config.hiddenSize;
    const tokens = (config.imageSize / config.patchSize) ** 2 + 1;
    const parameters = clipVisionParameters(config);
    const info = { tower: encoder.tower.dir, fingerprint: record.fingerprint, config, preprocess, parameters, tokens };
    if (flags.json) io.stdout(`${JSON.stringify(info)}\n`);
    else {
      io.stdout(
        [
          `vision tower: ${encoder.tower.dir} (${config.modelType}, fingerprint ${record.fingerprint})`,
          `ViT: ${config.numLayers} layers, width ${D}, ${config.numHeads} heads, MLP ${config.intermediateSize} (${config.activation}), patch ${config.patchSize}, ${config.imageSize} px (${tokens} tokens)`,
          `projection: ${config.projectionDim === null ? 'none (use --feature class-tokens:N)' : `${config.projectionDim} (image_embeds)`}`,
          `parameters: ${(parameters / 1e6).toFixed(2)}M (${((parameters * 4) / 2 ** 20).toFixed(1)} MiB as float32)`,
          `preprocessing: shortest edge ${preprocess.shortestEdge} (${preprocess.resample}), crop ${preprocess.cropHeight}x${preprocess.cropWidth}, mean [${preprocess.mean}], std [${preprocess.std}]`,
        ].join('\n') + '\n',
      );
    }
  } finally {
    encoder.dispose();
  }
  return 0;
}

export async function embedImageCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { vision: 'string', image: 'string', feature: 'string', json: 'boolean', backend: 'string' }, ['image']);
  const images = (flags.image as string[] | undefined) ?? [];
  if (images.length === 0) throw new EngineError('missing --image');
  const feature = parseFeatureChoice(flag(flags, 'feature') ?? 'projected', '--feature');
  await startBackend(flags, io);
  const encoder = loadImageEncoder(requireFlag(flags, 'vision'));
  try {
    const bytes = images.map((file) => {
      try {
        return new Uint8Array(readFileSync(file));
      } catch (e) {
        throw new EngineError(`${file}: cannot read the image (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    });
    const rows = await encoder.encode(bytes, feature, images);
    if (flags.json) {
      io.stdout(`${JSON.stringify({ embeddings: rows.map((row) => [...row]), feature: describeFeature(feature), tower: encoder.record.fingerprint })}\n`);
    } else {
      images.forEach((file, i) => {
        const row = rows[i];
        const norm = Math.sqrt(row.reduce((s, v) => s + v * v, 0));
        io.stdout(`${file}: ${row.length} values (${describeFeature(feature)}), norm ${norm.toFixed(4)}, first [${[...row.slice(0, 4)].map((v) => v.toFixed(4)).join(', ')}]\n`);
      });
    }
  } finally {
    encoder.dispose();
  }
  return 0;
}
