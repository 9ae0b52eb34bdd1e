// Image bytes -> the pixel tensor a CLIP tower reads, as transformers' CLIPImageProcessor makes it:
//   decode -> RGB as PIL's Image.convert("RGB") -> resize the shortest edge (PIL's resampling) -> centre crop
//   -> rescale (x / 255) -> normalise ((x - mean) / std), channels first [3, H, W].
//
// Decoding is sharp's (libvips: PNG, JPEG, WebP, GIF's first frame). Resizing is done here, not by libvips,
// because CLIPImageProcessor resizes with PIL and libvips' kernels round differently: this is PIL's separable
// convolution (Resample.c) with its 8-bit fixed-point coefficients, so an image resized here has the very
// pixels transformers feeds the tower.

import sharp, { type Metadata } from 'sharp';
import { EngineError } from '../errors.js';
import type { ClipPreprocess, Resample } from './clip-config.js';

/** Decompression-bomb guard: PIL warns at 89M pixels and refuses at twice that; we refuse at its warning. */
export const MAX_IMAGE_PIXELS = 89_478_485;

const FORMATS = new Set(['png', 'jpeg', 'webp', 'gif']);

/** 8-bit RGB pixels, row-major, 3 bytes per pixel. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Decodes an image file's bytes to RGB as PIL's Image.open(f).convert("RGB") does; `name` labels errors. One
 * deliberate difference: a 16-bit greyscale PNG keeps its high byte (as PIL does for 16-bit colour PNGs), where
 * PIL's "I;16" -> "RGB" conversion clips every value above 255 and makes almost any such picture white.
 */
export async function decodeRgb(bytes: Uint8Array, name: string): Promise<RgbImage> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'truncated' }).metadata();
  } catch (e) {
    throw new EngineError(`${name}: not a readable image (${(e as Error).message})`);
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    throw new EngineError(`${name}: image format "${meta.format ?? 'unknown'}" is not supported; use PNG, JPEG, WebP or GIF`);
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > MAX_IMAGE_PIXELS) throw new EngineError(`${name}: ${meta.width}x${meta.height} is over the ${MAX_IMAGE_PIXELS}-pixel limit (a decompression bomb?)`);
  // Pixel values as stored: no ICC colour management (PIL applies none), first frame only, EXIF orientation ignored.
  const pipeline = () => sharp(bytes, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'truncated', pages: 1, page: 0, ignoreIcc: true });
  try {
    if (meta.space === 'cmyk') {
      const { data, info } = await pipeline().pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
      return { width: info.width, height: info.height, data: cmykToRgb(data, info.channels) };
    }
    const { data, info } = await pipeline().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: toRgb(data, info.channels, meta.space === 'b-w' || meta.channels! <= 2) };
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`${name}: the image could not be decoded (${(e as Error).message})`);
  }
}

/** Grey, grey+alpha, RGB or RGBA bytes to RGB; alpha is dropped without compositing, as PIL's convert does. */
function toRgb(data: Uint8Array, channels: number, grey: boolean): Uint8Array {
  if (channels === 3 && !grey) return data;
  const n = data.length / channels;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const s = i * channels;
    if (grey) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[s];
    else {
      out[i * 3] = data[s];
      out[i * 3 + 1] = data[s + 1];
      out[i * 3 + 2] = data[s + 2];
    }
  }
  return out;
}

/** PIL's cmyk2rgb: each channel (255 - c) * (255 - k) / 255, rounded as its MULDIV255. */
function cmykToRgb(data: Uint8Array, channels: number): Uint8Array {
  const n = data.length / channels;
  const out = new Uint8Array(n * 3);
  const muldiv255 = (a: number, b: number) => {
    const t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (let i = 0; i < n; i++) {
    const k = data[i * channels + 3];
    const nk = 255 - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.max(0, nk - muldiv255(data[i * channels + c], nk));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PIL's resampling (libImaging/Resample.c), 8 bits per channel

type Filter = { support: number; f: (x: number) => number };

const FILTERS: Record<Resample, Filter> = {
  nearest: { support: 0, f: () => 0 }, // handled separately
  bilinear: { support: 1, f: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    f: (x) => {
      const sinc = (v: number) => (v === 0 ? 1 : Math.sin(Math.PI * v) / (Math.PI * v));
      return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
  },
};

const PRECISION_BITS = 32 - 8 - 2;

/** For each output index: the first input index and the fixed-point weights of the inputs it reads. */
function coefficients(inSize: number, outSize: number, filter: Filter): { first: Int32Array; weights: Int32Array[] } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const first = new Int32Array(outSize);
  const weights: Int32Array[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(xmax);
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.f((x + xmin - center + 0.5) / filterScale);
      k[x] = w;
      sum += w;
    }
    const fixed = new Int32Array(xmax);
    for (let x = 0; x < xmax; x++) {
      const w = sum !== 0 ? k[x] / sum : 0;
      fixed[x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    first[xx] = xmin;
    weights.push(fixed);
  }
  return { first, weights };
}

const clip8 = (ss: number) => {
  const v = Math.floor(ss / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** PIL's Image.resize((width, height), resample) of an RGB image (horizontal pass, then vertical). */
export function resizeRgb(img: RgbImage, width: number, height: number, resample: Resample): RgbImage {
  if (width === img.width && height === img.height) return img;
  if (resample === 'nearest') return resizeNearest(img, width, height);
  const filter = FILTERS[resample];
  let current = img;
  if (width !== img.width) {
    const { first, weights } = coefficients(img.width, width, filter);
    const out = new Uint8Array(width * img.height * 3);
    for (let y = 0; y < img.height; y++) {
      const row = y * img.width * 3;
      for (let xx = 0; xx < width; xx++) {
        const k = weights[xx];
        const x0 = first[xx];
        for (let c = 0; c < 3; c++) {
          let ss = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < k.length; x++) ss += img.data[row + (x0 + x) * 3 + c] * k[x];
          out[(y * width + xx) * 3 + c] = clip8(ss);
        }
      }
    }
    current = { width, height: img.height, data: out };
  }
  if (height !== current.height) {
    const { first, weights } = coefficients(current.height, height, filter);
    const out = new Uint8Array(width * height * 3);
    const stride = width * 3;
    for (let yy = 0; yy < height; yy++) {
      const k = weights[yy];
      const y0 = first[yy];
      for (let i = 0; i < stride; i++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < k.length; y++) ss += current.data[(y0 + y) * stride + i] * k[y];
        out[yy * stride + i] = clip8(ss);
      }
    }
    current = { width, height, data: out };
  }
  return current;
}

/** PIL's nearest neighbour: source index floor((x + 0.5) * in / out). */
function resizeNearest(img: RgbImage, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / width));
      for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = img.data[(sy * img.width + sx) * 3 + c];
    }
  }
  return { width, height, data: out };
}

/** transformers' get_resize_output_image_size(default_to_square=False): the short side becomes `edge`. */
export function shortestEdgeSize(width: number, height: number, edge: number): { width: number; height: number } {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((edge * long) / short);
  return width <= height ? { width: edge, height: newLong } : { width: newLong, height: edge };
}

/**
 * CLIPImageProcessor's output for one image: float32 [3, cropHeight, cropWidth], channels first. A crop larger
 * than the image reads zeros outside it (transformers pads with zeros before cropping).
 */
export function clipPixels(img: RgbImage, p: ClipPreprocess): Float32Array {
  let image = img;
  if (p.doResize) {
    const size = shortestEdgeSize(image.width, image.height, p.shortestEdge);
    image = resizeRgb(image, size.width, size.height, p.resample);
  }
  const [outH, outW] = p.doCenterCrop ? [p.cropHeight, p.cropWidth] : [image.height, image.width];
  const top = Math.floor((image.height - outH) / 2);
  const left = Math.floor((image.width - outW) / 2);
  const out = new Float32Array(3 * outH * outW);
  const scale = p.doRescale ? p.rescaleFactor : 1;
  for (let c = 0; c < 3; c++) {
    const mean = p.doNormalize ? p.mean[c] : 0;
    const std = p.doNormalize ? p.std[c] : 1;
    for (let y = 0; y < outH; y++) {
      const sy = y + top;
      for (let x = 0; x < outW; x++) {
        const sx = x + left;
        const v = sy >= 0 && sy < image.height && sx >= 0 && sx < image.width ? image.data[(sy * image.width + sx) * 3 + c] : 0;
        // transformers rescales to float32, then normalises in float32.
        out[(c * outH + y) * outW + x] = (Math.fround(v * scale) - mean) / std;
      }
    }
  }
  return out;
}
