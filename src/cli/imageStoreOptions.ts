// --image-store and --images-dir, shared by every command that starts a service process (fisedit serve,
// fisedit worker): all processes of one deployment must name the same store.
//   --image-store directory|database   FISEDIT_IMAGE_STORE   directory
//   --images-dir DIR                   FISEDIT_IMAGES_DIR    DATA/images (a folder every replica mounts)
import * as path from 'path';
import type { ImageStoreConfig } from '../service/images/openImageStore';
import { usageError } from './exitCodes';

export const IMAGE_STORE_OPTIONS = {
  'image-store': { type: 'string' },
  'images-dir': { type: 'string' },
} as const;

export const IMAGE_STORE_HELP = `Images: --image-store directory (default; --images-dir DIR, default DATA/images: a folder every replica
mounts) or --image-store database (the database's ImageFile table: replicas on one PostgreSQL share them).
Environment: FISEDIT_IMAGE_STORE, FISEDIT_IMAGES_DIR.`;

export function imageStoreConfigFrom(o: { 'image-store'?: string; 'images-dir'?: string }, env: NodeJS.ProcessEnv = process.env): ImageStoreConfig {
  const kind = (o['image-store'] ?? env.FISEDIT_IMAGE_STORE ?? 'directory').toLowerCase();
  const dir = o['images-dir'] ?? env.FISEDIT_IMAGES_DIR;
  if (kind === 'database') {
    if (dir !== undefined) throw usageError('--images-dir is for --image-store directory; --image-store database keeps images in the database');
    return { kind: 'database' };
  }
  if (kind !== 'directory') throw usageError(`--image-store must be directory or database (got ${JSON.stringify(kind)})`);
  if (dir !== undefined && dir.trim() === '') throw usageError('--images-dir must name a folder');
  return { kind: 'directory', dir: dir === undefined ? undefined : path.resolve(dir) };
}
