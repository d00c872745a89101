// `fisedit images copy`: copies every image file the database's nodes name from one image store to
// another, for a deployment that moves from DATA/images to a shared folder or to the database (scale-out:
// docs/scaling.md). Start the service on the new store afterwards. Idempotent: a second run rewrites the
// same bytes. Files the source lacks are listed and make it exit 4.
import * as path from 'path';
import { openDatabase } from '../db/client';
import { defaultDatabaseUrl } from '../db/databaseUrl';
import { ImageMissingError } from '../service/images/imageStore';
import { ImageStoreConfig, openImageStore } from '../service/images/openImageStore';
import type { CliIo } from './commands/io';
import { CliError, EXIT, usageError } from './exitCodes';
import { parseOptions } from './options';

export const IMAGES_HELP = `Usage: fisedit images copy (--to-database | --to-images-dir DIR) [--from-database | --from-images-dir DIR]
                           [--data DIR] [--database-url URL]

Copies every image, thumbnail and mask the database's nodes name from one image store to another (default
source: the folder DATA/images), then start fisedit serve / worker with the new store (--image-store database
or --images-dir DIR). Prints how many files it copied; files missing from the source are listed (exit 4).
--data defaults to FISEDIT_DATA or ./data; --database-url to DATABASE_URL or the SQLite file in --data.
`;

const SPEC = {
  'to-database': { type: 'boolean' },
  'to-images-dir': { type: 'string' },
  'from-database': { type: 'boolean' },
  'from-images-dir': { type: 'string' },
  data: { type: 'string' },
  'database-url': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function storeFrom(database: boolean | undefined, dir: string | undefined, side: 'from' | 'to'): ImageStoreConfig | null {
  if (database && dir !== undefined) throw usageError(`images copy: give --${side}-database or --${side}-images-dir, not both`);
  if (database) return { kind: 'database' };
  if (dir !== undefined) return { kind: 'directory', dir: path.resolve(dir) };
  return null;
}

const defaultIo: CliIo = { stdout: process.stdout, stderr: process.stderr };

export async function runImages(argv: string[], io: CliIo = defaultIo): Promise<number> {
  try {
    const [action, ...rest] = argv;
    if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
      (action === undefined ? io.stderr : io.stdout).write(IMAGES_HELP);
      return action === undefined ? EXIT.usage : EXIT.ok;
    }
    if (action !== 'copy') throw usageError(`images: unknown action ${JSON.stringify(action)} (copy)`);
    const o = parseOptions(rest, SPEC, 'images');
    if (o.help) {
      io.stdout.write(IMAGES_HELP);
      return EXIT.ok;
    }
    const dataDir = path.resolve(o.data ?? process.env.FISEDIT_DATA ?? 'data');
    const to = storeFrom(o['to-database'], o['to-images-dir'], 'to');
    if (!to) throw usageError('images copy: say where to: --to-database or --to-images-dir DIR');
    const from = storeFrom(o['from-database'], o['from-images-dir'], 'from') ?? { kind: 'directory', dir: path.join(dataDir, 'images') };
    const where = (c: ImageStoreConfig) => (c.kind === 'database' ? 'database' : path.resolve(c.dir ?? path.join(dataDir, 'images')));
    if (where(from) === where(to)) throw usageError('images copy: the source and the target are the same store');
    let database;
    try {
      database = await openDatabase({ url: o['database-url'] ?? process.env.DATABASE_URL ?? defaultDatabaseUrl(dataDir) });
    } catch (e) {
      throw new CliError(EXIT.io, `cannot open the database: ${(e as Error).message}`);
    }
    try {
      const source = openImageStore(from, dataDir, database);
      const target = openImageStore(to, dataDir, database);
      const nodes = await database.db.node.findMany({ select: { imagePath: true, thumbPath: true, maskPath: true, inputMaskPath: true } });
      const paths = [...new Set(nodes.flatMap((n) => [n.imagePath, n.thumbPath, n.maskPath, n.inputMaskPath]).filter((p): p is string => !!p))];
      const missing: string[] = [];
      let copied = 0;
      for (const rel of paths) {
        let bytes: Buffer;
        try {
          bytes = await source.read(rel);
        } catch (e) {
          if (!(e instanceof ImageMissingError)) throw e;
          missing.push(rel);
          continue;
        }
        await target.write(rel, bytes);
        copied++;
      }
      io.stdout.write(`copied ${copied} of ${paths.length} image files from ${source.description} to ${target.description}\n`);
      if (missing.length > 0) {
        io.stderr.write(`${missing.length} missing from ${source.description}: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}\n`);
        return EXIT.io;
      }
      return EXIT.ok;
    } finally {
      await database.close();
    }
  } catch (e) {
    if (e instanceof CliError) {
      io.stderr.write(`fisedit: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
