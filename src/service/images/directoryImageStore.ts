// Image files in a folder: DATA/images for one server, or a folder every replica and worker mounts
// (--images-dir). Files are written under a temporary name unique to this host and process, then
// renamed: rename is atomic on one file system (NFS included), so a reader on any host sees the whole
// old file or the whole new one.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { EncodingImageStore } from './imageStore';

export class DirectoryImageStore extends EncodingImageStore {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    super();
    this.root = path.resolve(root);
    fs.mkdirSync(this.root, { recursive: true });
    this.description = `directory ${this.root}`;
  }

  private abs(rel: string): string {
    return path.join(this.root, rel);
  }

  protected async put(rel: string, bytes: Buffer): Promise<void> {
    const abs = this.abs(rel);
    await fs.promises.mkdir(path.dirname(abs), { recursive: true });
    const tmp = `${abs}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await fs.promises.writeFile(tmp, bytes);
    await fs.promises.rename(tmp, abs);
  }

  protected async get(rel: string): Promise<Buffer | null> {
    try {
      return await fs.promises.readFile(this.abs(rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  protected async delete(rel: string): Promise<void> {
    await fs.promises.rm(this.abs(rel), { force: true });
  }
}
