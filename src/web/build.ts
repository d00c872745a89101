// Builds the web client into dist/web (run by `npm ci` through postinstall, or `npm run build:web`):
//   app.js / app.css            the editor (src/web/main.ts), with the graphql-ws client bundled in
//   explorer.js / explorer.css  GraphiQL for GET /graphql in a browser (src/web/explorer.tsx)
//   index.html / explorer.html  their pages
// Everything is bundled and minified; nothing is loaded from elsewhere at run time.
import * as fs from 'fs';
import * as path from 'path';

export const WEB_SRC = __dirname;
export const WEB_OUT = path.join(__dirname, '../../dist/web');

export interface BuiltFile {
  name: string;
  bytes: number;
}

export async function buildWeb(outDir = WEB_OUT): Promise<BuiltFile[]> {
  const esbuild = await import('esbuild');
  fs.mkdirSync(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: { app: path.join(WEB_SRC, 'main.ts'), explorer: path.join(WEB_SRC, 'explorer.tsx') },
    outdir: outDir,
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    legalComments: 'none',
    logLevel: 'warning',
  });
  fs.copyFileSync(path.join(WEB_SRC, 'app.css'), path.join(outDir, 'app.css'));
  for (const page of ['index.html', 'explorer.html']) fs.copyFileSync(path.join(WEB_SRC, page), path.join(outDir, page));
  return fs.readdirSync(outDir).sort().map((name) => ({ name, bytes: fs.statSync(path.join(outDir, name)).size }));
}

if (require.main === module) {
  const started = Date.now();
  buildWeb().then(
    (files) => console.log(`web client built into ${path.relative(process.cwd(), WEB_OUT)} in ${Date.now() - started} ms: ${files.map((f) => `${f.name} ${(f.bytes / 1024).toFixed(1)} KiB`).join(', ')}`),
    (e: NodeJS.ErrnoException) => {
      // `npm ci --omit=dev` has no esbuild: the API still runs, and `/` says how to build the client.
      if (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') console.warn(`web client not built (${e.message.split('\n')[0]}); run npm run build:web after installing dev dependencies`);
      else {
        console.error(e);
        process.exit(1);
      }
    },
  );
}
