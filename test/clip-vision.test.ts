// The CLIP vision tower (src-main/engine/vision) against transformers (tools/make_clip_fixtures.py): the pixels
// CLIPImageProcessor makes from PNG/JPEG/WebP/GIF files of every colour mode and size, and the tower's outputs
// (image_embeds, class tokens of every layer) for a CLIPModel folder (quick_gelu, float32) and a sharded float16
// CLIPVisionModel (gelu), on the cpu, native and webgpu backends. Plus the refusals: bad images, other families,
// missing tensors, unknown config keys.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { shutdownWebgpu } from '../src-main/engine/backends/webgpu.js';
import { readClipVisionConfig } from '../src-main/engine/vision/clip-config.js';
import { main } from '../src-main/cli/main.js';
import { loadClipVisionTower } from '../src-main/engine/vision/clip-vision.js';
import { type ClipImageEncoder, loadImageEncoder } from '../src-main/engine/vision/encoder.js';
import { decodeRgb, resizeRgb } from '../src-main/engine/vision/preprocess.js';

const ROOT = join(import.meta.dirname, 'fixtures', 'clip');
const TOWERS = ['clip-full', 'clip-vision-gelu'] as const;

interface TowerOutputs {
  pixel_values: string;
  image_embeds?: string;
  class_tokens: string[];
}
interface Expected {
  images: Record<string, { mode: string; size: [number, number] } & Record<(typeof TOWERS)[number], TowerOutputs>>;
  bad: string[];
}
const expected = JSON.parse(readFileSync(join(ROOT, 'expected.json'), 'utf8')) as Expected;
const f32 = (b64: string) => {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};
const image = (name: string) => new Uint8Array(readFileSync(join(ROOT, 'images', name)));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('CLIP preprocessing (CLIPImageProcessor, PIL resampling)', () => {
  beforeAll(() => initBackend('cpu'));
  for (const tower of TOWERS) {
    for (const name of Object.keys(expected.images)) {
      it(`${tower}: ${name} (${expected.images[name].mode} ${expected.images[name].size.join('x')})`, async () => {
        const encoder = loadImageEncoder(join(ROOT, tower));
        try {
          const pixels = await encoder.pixels(image(name), name);
          // Float32 rounding of (x / 255 - mean) / std only: the same 8-bit pixels as PIL.
          expect(maxAbsDiff(pixels, f32(expected.images[name][tower].pixel_values))).toBeLessThan(1e-5);
        } finally {
          encoder.dispose();
        }
      });
    }
  }

  it('refuses truncated files and files that are not images, naming them', async () => {
    for (const name of expected.bad) await expect(decodeRgb(image(name), `images/${name}`)).rejects.toThrow(`images/${name}`);
    await expect(decodeRgb(image('truncated.png'), 'x.png')).rejects.toThrow(/not a readable image|could not be decoded/);
  });

  it('refuses an image over the pixel limit before decoding it', async () => {
    // A 20000 x 20000 PNG header (400M pixels): sharp refuses from the header, never allocating the pixels.
    const sharp = (await import('sharp')).default;
    const bomb = await sharp({ create: { width: 20000, height: 5000, channels: 3, background: '#000' }, limitInputPixels: false }).png({ compressionLevel: 9 }).toBuffer();
    await expect(decodeRgb(new Uint8Array(bomb), 'bomb.png')).rejects.toThrow(/bomb\.png.*(pixel|limit)/i);
  });

  it('resizes as PIL does when only one side changes and when upscaling', () => {
    const img = { width: 3, height: 2, data: new Uint8Array([0, 0, 0, 255, 255, 255, 0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90]) };
    expect(resizeRgb(img, 3, 2, 'bicubic')).toBe(img);
    const up = resizeRgb(img, 6, 2, 'bilinear');
    expect(up.width).toBe(6);
    expect(up.data.length).toBe(6 * 2 * 3);
  });
});

describe.each(['cpu', 'native', 'webgpu'] as const)('CLIP vision tower on the %s backend', (backend) => {
  const encoders: Partial<Record<(typeof TOWERS)[number], ClipImageEncoder>> = {};
  beforeAll(async () => {
    await initBackend(backend);
    for (const t of TOWERS) encoders[t] = loadImageEncoder(join(ROOT, t));
  });
  afterAll(async () => {
    for (const e of Object.values(encoders)) e?.dispose();
    if (backend === 'webgpu') await shutdownWebgpu();
  });

  for (const tower of TOWERS) {
    it(`${tower}: every layer's class token and image_embeds match transformers within 1e-4`, async () => {
      const encoder = encoders[tower]!;
      const names = Object.keys(expected.images);
      const layers = expected.images[names[0]][tower].class_tokens.map((_, i) => i + 1);
      // Batched: all images through the tower at once, so rows must not mix.
      const tokens = await encoder.encode(names.map(image), { kind: 'class-tokens', layers }, names);
      let worst = 0;
      names.forEach((name, i) => {
        const want = expected.images[name][tower].class_tokens.flatMap((b64) => [...f32(b64)]);
        worst = Math.max(worst, maxAbsDiff(tokens[i], want));
      });
      expect(worst).toBeLessThan(1e-4);
      if (tower === 'clip-full') {
        const embeds = await encoder.encode(names.map(image), { kind: 'projected' }, names);
        names.forEach((name, i) => expect(maxAbsDiff(embeds[i], f32(expected.images[name][tower].image_embeds!))).toBeLessThan(1e-4));
      } else {
        expect(() => encoder.featureDim({ kind: 'projected' })).toThrow(/no visual_projection.*class-tokens/);
      }
    });
  }

  it('one image alone gives the row it gets in a batch', async () => {
    const encoder = encoders['clip-full']!;
    const [alone] = await encoder.encode([image('rgb.jpg')], { kind: 'projected' }, ['rgb.jpg']);
    const batch = await encoder.encode([image('grey.png'), image('rgb.jpg')], { kind: 'projected' }, ['grey.png', 'rgb.jpg']);
    expect(maxAbsDiff(alone, batch[1])).toBeLessThan(1e-5);
  });
});

describe('CLIP folders that are refused', () => {
  let dir: string;
  beforeAll(async () => {
    await initBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'clip-refuse-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const copy = (tower: string, edit?: (config: Record<string, unknown>) => void) => {
    const out = mkdtempSync(join(dir, 'c-'));
    cpSync(join(ROOT, tower), out, { recursive: true });
    if (edit) {
      const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      edit(config);
      writeFileSync(join(out, 'config.json'), JSON.stringify(config));
    }
    return out;
  };

  it('another vision family, by model_type', () => {
    expect(() => readClipVisionConfig(copy('clip-vision-gelu', (c) => (c.model_type = 'siglip_vision_model')))).toThrow(/model_type.*siglip_vision_model.*not implemented/);
  });
  it('a config key that changes the computation', () => {
    expect(() => readClipVisionConfig(copy('clip-full', (c) => ((c.vision_config as Record<string, unknown>).use_rope = true)))).toThrow(/vision_config: field "use_rope"/);
    expect(() => readClipVisionConfig(copy('clip-vision-gelu', (c) => (c.hidden_act = 'relu')))).toThrow(/hidden_act.*relu/);
  });
  it('weights that disagree with the config', () => {
    expect(() => loadClipVisionTower(copy('clip-vision-gelu', (c) => (c.intermediate_size = 48)))).toThrow(/mlp\.fc1\.weight" has shape \[40,24\], but config\.json implies \[48,24\]/);
    expect(() => loadClipVisionTower(copy('clip-vision-gelu', (c) => (c.num_hidden_layers = 4)))).toThrow(/missing tensor "encoder\.layers\.3\./);
    expect(() => loadClipVisionTower(copy('clip-vision-gelu', (c) => (c.num_hidden_layers = 2)))).toThrow(/encoder\.layers\.2\..*not part of a CLIP vision tower/);
  });
  it('fingerprints tell towers apart and are stable', () => {
    const a = loadClipVisionTower(join(ROOT, 'clip-full'));
    const b = loadClipVisionTower(join(ROOT, 'clip-full'));
    const c = loadClipVisionTower(join(ROOT, 'clip-vision-gelu'));
    expect(a.record.fingerprint).toBe(b.record.fingerprint);
    expect(a.record.fingerprint).not.toBe(c.record.fingerprint);
    expect(a.record.projectionDim).toBe(16);
    expect(c.record.projectionDim).toBeNull();
  });
});

describe('embed-image and vision-info commands', () => {
  async function cli(args: string[]) {
    let stdout = '';
    let stderr = '';
    const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
    return { code, stdout, stderr };
  }

  it('prints image_embeds as transformers computes them', async () => {
    const out = await cli(['embed-image', '--backend', 'cpu', '--vision', join(ROOT, 'clip-full'), '--image', join(ROOT, 'images', 'rgb.webp'), '--json']);
    expect(out.code).toBe(0);
    const parsed = JSON.parse(out.stdout) as { feature: string; embeddings: number[][] };
    expect(parsed.feature).toBe('projected');
    expect(parsed.embeddings).toHaveLength(1);
    expect(maxAbsDiff(parsed.embeddings[0], f32(expected.images['rgb.webp']['clip-full'].image_embeds!))).toBeLessThan(1e-4);
  });

  it('vision-info describes a tower without a projection', async () => {
    const out = await cli(['vision-info', '--backend', 'cpu', '--vision', join(ROOT, 'clip-vision-gelu'), '--json']);
    expect(out.code).toBe(0);
    const info = JSON.parse(out.stdout);
    expect(info.config).toMatchObject({ modelType: 'clip_vision_model', numLayers: 3, hiddenSize: 24, activation: 'gelu', projectionDim: null });
    expect(info.tokens).toBe(10);
  });

  it('an unreadable image is an error naming the file', async () => {
    const bad = join(ROOT, 'images', 'not-an-image.png');
    const out = await cli(['embed-image', '--backend', 'cpu', '--vision', join(ROOT, 'clip-full'), '--image', bad]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`${bad}: not a readable image`);
  });
});
