// Image files under <dataDir>/images/<treeId>/: <nodeId>.png (full image, parameters in PNG text
// chunks), <nodeId>.thumb.webp (longest side ≤ 256), <nodeId>.mask.png (the area an edit changed) and
// <nodeId>.input-mask.png (a mask the user drew). The database keeps paths relative to images/.
// Files are written to a temporary name and renamed, so a reader never sees half a file.

import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { encodePng } from '../../engine/image/png';

export const THUMB_MAX_SIDE = 256;

export interface StoredImage {
  imagePath: string;
  thumbPath: string;
}

export class ImageStore {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = path.resolve(dataDir, 'images');
    fs.mkdirSync(this.root, { recursive: true });
  }

  /** Absolute path of a stored relative path; refuses anything that escapes images/. */
  resolve(rel: string): string {
    const abs = path.resolve(this.root, rel);
    if (!abs.startsWith(this.root + path.sep)) throw new Error(`src/service/images/imageStore.ts: path ${JSON.stringify(rel)} escapes the image folder`);
    return abs;
  }

  async saveResult(treeId: string, nodeId: string, rgb: Uint8Array, width: number, height: number, text: Record<string, string>): Promise<StoredImage> {
    const png = await encodePng(rgb, width, height, text);
    const scale = Math.min(1, THUMB_MAX_SIDE / Math.max(width, height));
    const thumb = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } })
      .resize(Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale)))
      .webp({ quality: 80 })
      .toBuffer();
    const imagePath = `${treeId}/${nodeId}.png`;
    const thumbPath = `${treeId}/${nodeId}.thumb.webp`;
    this.writeAtomic(imagePath, png);
    this.writeAtomic(thumbPath, thumb);
    return { imagePath, thumbPath };
  }

  /** An 8-bit grey mask as PNG; returns its relative path. */
  async saveMask(treeId: string, nodeId: string, kind: 'mask' | 'input-mask', data: Uint8Array, width: number, height: number): Promise<string> {
    const png = await sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels: 1 } }).png().toBuffer();
    const rel = `${treeId}/${nodeId}.${kind}.png`;
    this.writeAtomic(rel, png);
    return rel;
  }

  read(rel: string): Buffer {
    return fs.readFileSync(this.resolve(rel));
  }

  /** Removes files; missing ones are fine (deletes may race with a job finishing). */
  remove(rels: (string | null | undefined)[]): void {
    for (const rel of rels) {
      if (!rel) continue;
      try {
        fs.rmSync(this.resolve(rel), { force: true });
      } catch {
        // a path that cannot be resolved was never ours to delete
      }
    }
  }

  private writeAtomic(rel: string, bytes: Buffer): void {
    const abs = this.resolve(rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    const tmp = `${abs}.${process.pid}.${Date.now()}.tmp`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, abs);
  }
}
