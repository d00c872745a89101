// Which image store a process uses (fisedit serve and fisedit worker take the same options, and every
// process of one deployment must name the same store).
import * as path from 'path';
import type { Database } from '../../db/client';
import { DatabaseImageStore } from './databaseImageStore';
import { DirectoryImageStore } from './directoryImageStore';
import type { ImageStore } from './imageStore';

export type ImageStoreConfig =
  /** A folder; default DATA/images. Several replicas: a folder they all mount. */
  | { kind: 'directory'; dir?: string }
  /** The "ImageFile" table of the service's database. */
  | { kind: 'database' };

export function openImageStore(config: ImageStoreConfig | undefined, dataDir: string, database: Database): ImageStore {
  if (config?.kind === 'database') return new DatabaseImageStore(database.db, database.provider);
  return new DirectoryImageStore(config?.dir ?? path.join(dataDir, 'images'));
}
