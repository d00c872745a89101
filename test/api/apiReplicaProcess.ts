// An API-only replica (GraphQL, subscriptions, images; runs no jobs) in its own process, for
// test/api/replicas.test.ts while `fisedit serve` has no --workers 0 yet. Takes serve's flags that the
// test passes and prints serve's "FISEdit GraphQL API: …" line.
import { parseArgs } from 'node:util';
import { buildServer } from '../../src/api/server';
import { IMAGE_STORE_OPTIONS, imageStoreConfigFrom } from '../../src/cli/imageStoreOptions';
import { createService } from '../../src/service/service';

async function main(): Promise<void> {
  const { values: o } = parseArgs({
    args: process.argv.slice(2),
    options: { port: { type: 'string' }, engine: { type: 'string' }, data: { type: 'string' }, model: { type: 'string' }, threads: { type: 'string' }, 'database-url': { type: 'string' }, 'redis-url': { type: 'string' }, ...IMAGE_STORE_OPTIONS },
  });
  const service = await createService({
    dataDir: o.data!,
    modelDir: o.model!,
    databaseUrl: o['database-url'],
    redisUrl: o['redis-url'],
    intraOpNumThreads: Number(o.threads ?? 1),
    images: imageStoreConfigFrom(o),
    runJobs: false,
    engineMode: 'thread',
  });
  const server = buildServer({ service, port: Number(o.port ?? 0) });
  await server.start();
  process.stdout.write(`FISEdit GraphQL API: ${server.url}/graphql  (WebSocket: ${server.wsUrl})\n`);
  await new Promise((r) => process.once('SIGTERM', r));
  await server.stop();
  await service.close();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
