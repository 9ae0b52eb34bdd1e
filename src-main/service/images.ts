// images.*: pictures a user attaches to a chat message or a generation, kept in the workspace's image store
// (content-addressed, as dataset images are), and read back for display.

import { type ApiHandlers, MAX_PICTURE_BYTES, pictureTooLarge } from '../../src-shared/api.js';
import { checkImageBytes } from '../datasets/images.js';
import { type ImageInfo, imageMimeType, type Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';

/** Checks a picture's bytes (whole decode, pixel limit) and keeps it in the workspace's image store. */
export async function storePicture(ws: Workspace, bytes: Uint8Array, name: string): Promise<ImageInfo> {
  if (bytes.length > MAX_PICTURE_BYTES) throw userError(pictureTooLarge(name, bytes.length));
  const checked = await checkImageBytes(bytes, name);
  if (!checked.ok) throw userError(checked.message);
  const staging = ws.images.stage();
  try {
    const info = staging.add(checked.bytes, checked.info);
    staging.commit();
    ws.db.transaction(() => {
      if (!ws.images.find(info.sha256)) ws.images.record([info]);
    })();
    return info;
  } catch (e) {
    staging.rollback();
    throw e;
  }
}

export function imageHandlers(ctx: ServiceContext): Pick<ApiHandlers, 'images.upload' | 'images.get'> {
  return {
    'images.upload': async ({ fileName, base64 }) => {
      const info = await storePicture(ctx.ws(), new Uint8Array(Buffer.from(base64, 'base64')), fileName);
      return { sha256: info.sha256, format: info.format, mimeType: imageMimeType(info.format), width: info.width, height: info.height, bytes: info.bytes };
    },
    'images.get': async ({ sha256 }) => {
      const ws = ctx.ws();
      if (!ws.images.find(sha256)) throw userError(`no picture ${sha256.slice(0, 12)}… in this workspace`);
      const { image, bytes } = ws.images.read(sha256);
      return { sha256: image.sha256, format: image.format, mimeType: imageMimeType(image.format), width: image.width, height: image.height, bytes: image.bytes, base64: bytes.toString('base64') };
    },
  };
}
