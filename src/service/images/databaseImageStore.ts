// Image files in the service's database (table "ImageFile"; bytea on PostgreSQL, BLOB on SQLite), for
// replicas that share nothing but the database. A row is written in one statement, so a reader sees the
// whole file or none. bytea rather than large objects: a row is deleted with its path (large objects
// need lo_unlink, or they leak), travels in ordinary dumps and replicas, and the files are small (a
// 512² PNG is ~0.4 MB, far below bytea's 1 GB).
import type { Db } from '../../db/client';
import { EncodingImageStore } from './imageStore';

export class DatabaseImageStore extends EncodingImageStore {
  readonly description: string;

  constructor(private readonly db: Db, provider: string) {
    super();
    this.description = `database (${provider})`;
  }

  protected async put(rel: string, bytes: Buffer): Promise<void> {
    const data = new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
    await this.db.imageFile.upsert({ where: { path: rel }, create: { path: rel, bytes: data }, update: { bytes: data } });
  }

  protected async get(rel: string): Promise<Buffer | null> {
    const row = await this.db.imageFile.findUnique({ where: { path: rel }, select: { bytes: true } });
    return row ? Buffer.from(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength) : null;
  }

  protected async delete(rel: string): Promise<void> {
    await this.db.imageFile.deleteMany({ where: { path: rel } });
  }
}
