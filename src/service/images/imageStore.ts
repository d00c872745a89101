// Where a node's image files live. Every API replica serves any node's image and every worker reads a
// parent's image and masks, so the service sees one interface with two implementations:
//   DirectoryImageStore  a folder: DATA/images by default (one server), or a folder all replicas mount
//                        (--images-dir, e.g. NFS)
//   DatabaseImageStore   the "ImageFile" table of the service's database (--image-store database):
//                        bytea on PostgreSQL, so replicas need nothing but the database
// Files per node, under a relative path that the database keeps on the node:
//   <treeId>/<nodeId>.png             the full image, parameters in PNG text chunks
//   <treeId>/<nodeId>.thumb.webp      longest side ≤ 256
//   <treeId>/<nodeId>.mask.png        the area an edit changed
//   <treeId>/<nodeId>.input-mask.png  a mask the user drew
// A write is all or nothing: a reader never sees half a file.

import sharp from 'sharp';
import { encodePng } from '../../engine/image/png';

export const THUMB_MAX_SIDE = 256;

export interface StoredImage {
  imagePath: string;
  thumbPath: string;
}

export type MaskKind = 'mask' | 'input-mask';

/** A stored path that is not there (deleted, or written by a store this process does not use). */
export class ImageMissingError extends Error {
  constructor(readonly rel: string, where: string) {
    super(`image ${JSON.stringify(rel)} is not in ${where}`);
    this.name = 'ImageMissingError';
  }
}

export interface ImageStore {
  /** For logs and start-up messages: "directory /srv/images", "database (postgresql)". */
  readonly description: string;
  /** Encodes and stores a result's PNG and WebP thumbnail. */
  saveResult(treeId: string, nodeId: string, rgb: Uint8Array, width: number, height: number, text: Record<string, string>): Promise<StoredImage>;
  /** Stores an 8-bit grey mask as PNG; returns its relative path. */
  saveMask(treeId: string, nodeId: string, kind: MaskKind, data: Uint8Array, width: number, height: number): Promise<string>;
  /** The stored bytes; ImageMissingError when the path holds nothing. */
  read(rel: string): Promise<Buffer>;
  /** Stores bytes under a path as they are (copying files from another store). */
  write(rel: string, bytes: Buffer): Promise<void>;
  /** Removes files; missing ones are fine (deletes may race with a job finishing). */
  remove(rels: (string | null | undefined)[]): Promise<void>;
}

/** The shape of a stored path: two plain segments, so no store can be led outside its own files. */
export function checkRelativePath(rel: string): string {
  if (!/^[\w-]+\/[\w.-]+$/.test(rel) || rel.includes('..')) throw new Error(`src/service/images/imageStore.ts: ${JSON.stringify(rel)} is not an image path (<treeId>/<file>)`);
  return rel;
}

/** The encoding every store shares; a store supplies put/get/delete of whole files. */
export abstract class EncodingImageStore implements ImageStore {
  abstract readonly description: string;
  protected abstract put(rel: string, bytes: Buffer): Promise<void>;
  protected abstract get(rel: string): Promise<Buffer | null>;
  protected abstract delete(rel: string): Promise<void>;

  async saveResult(treeId: string, nodeId: string, rgb: Uint8Array, width: number, height: number, text: Record<string, string>): Promise<StoredImage> {
    const png = await encodePng(rgb, width, height, text);
    const scale = Math.min(1, THUMB_MAX_SIDE / Math.max(width, height));
    const thumb = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } })
      .resize(Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale)))
      .webp({ quality: 80 })
      .toBuffer();
    const imagePath = checkRelativePath(`${treeId}/${nodeId}.png`);
    const thumbPath = checkRelativePath(`${treeId}/${nodeId}.thumb.webp`);
    await this.put(imagePath, png);
    await this.put(thumbPath, thumb);
    return { imagePath, thumbPath };
  }

  async saveMask(treeId: string, nodeId: string, kind: MaskKind, data: Uint8Array, width: number, height: number): Promise<string> {
    const png = await sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels: 1 } }).png().toBuffer();
    const rel = checkRelativePath(`${treeId}/${nodeId}.${kind}.png`);
    await this.put(rel, png);
    return rel;
  }

  async read(rel: string): Promise<Buffer> {
    const bytes = await this.get(checkRelativePath(rel));
    if (!bytes) throw new ImageMissingError(rel, this.description);
    return bytes;
  }

  async write(rel: string, bytes: Buffer): Promise<void> {
    await this.put(checkRelativePath(rel), bytes);
  }

  async remove(rels: (string | null | undefined)[]): Promise<void> {
    for (const rel of rels) {
      if (!rel) continue;
      let checked: string;
      try {
        checked = checkRelativePath(rel);
      } catch {
        continue; // a path of another shape was never ours to delete
      }
      await this.delete(checked);
    }
  }
}
