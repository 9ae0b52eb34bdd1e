// images.*: pictures a user attaches to a chat message or a generation, kept in the workspace's image store
// (content-addressed, as dataset images are), and read back for display.

import type { ApiHandlers } from '../../src-shared/api.js';
import { checkImageBytes } from '../datasets/images.js';
import { imageMimeType } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';

export function imageHandlers(ctx: ServiceContext): Pick<ApiHandlers, 'images.upload' | 'images.get'> {
  return {
    'images.upload': async ({ fileName, base64 }) => {
      const bytes = new Uint8Array(Buffer.from(base64, 'base64'));
      const checked = await checkImageBytes(bytes, fileName);
      if (!checked.ok) throw userError(checked.message);
      const ws = ctx.ws();
      const staging = ws.images.stage();
      try {
        const info = staging.add(checked.bytes, checked.info);
        staging.commit();
        ws.db.transaction(() => {
          if (!ws.images.find(info.sha256)) ws.images.record([info]);
        })();
        return { sha256: info.sha256, format: info.format, mimeType: imageMimeType(info.format), width: info.width, height: info.height, bytes: info.bytes };
      } catch (e) {
        staging.rollback();
        throw e;
      }
    },
    'images.get': async ({ sha256 }) => {
      const ws = ctx.ws();
      if (!ws.images.find(sha256)) throw userError(`no picture ${sha256.slice(0, 12)}… in this workspace`);
      const { image, bytes } = ws.images.read(sha256);
      return { sha256: image.sha256, format: image.format, mimeType: imageMimeType(image.format), width: image.width, height: image.height, bytes: image.bytes, base64: bytes.toString('base64') };
    },
  };
}
