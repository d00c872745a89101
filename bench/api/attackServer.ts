// The server side of bench/api/attack.ts, in its own process so that the event-loop delay it measures is
// the server's alone (the load generators and the attacker run in the parent). Talks over IPC:
//   → { cmd: 'measure' }  starts a fresh event-loop histogram      ← { type: 'measuring' }
//   → { cmd: 'stop' }     stops it                                  ← { type: 'loop', p50, p99, max } (ms)
//   → { cmd: 'drain' }    cancels every queued job                  ← { type: 'drained' }
//   → { cmd: 'exit' }     stops server and service, exits
// On start it sends { type: 'ready', url, wsUrl, token, attackerToken }.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import { buildServer } from '../../src/api/server';
import { createToken } from '../../src/service/auth/tokens';
import { createService } from '../../src/service/service';

async function main(): Promise<void> {
  const model = process.argv[2];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fisedit-bench-attack-'));
  const service = await createService({ dataDir, modelDir: model, intraOpNumThreads: 1, previewIntervalMs: 250, maxQueuedPerUser: 10_000 });
  const server = buildServer({ service, host: '127.0.0.1' });
  await server.start();
  const { token } = await createToken(service.database.db, 'bench');
  const { token: attackerToken } = await createToken(service.database.db, 'mallory');
  const loop = monitorEventLoopDelay({ resolution: 1 });
  process.on('message', async (m: { cmd: string }) => {
    if (m.cmd === 'measure') {
      loop.reset();
      loop.enable();
      process.send!({ type: 'measuring' });
    } else if (m.cmd === 'stop') {
      loop.disable();
      process.send!({ type: 'loop', p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 });
    } else if (m.cmd === 'drain') {
      await service.database.db.node.updateMany({ where: { status: 'QUEUED' }, data: { status: 'CANCELLED' } });
      await service.database.db.job.updateMany({ where: { status: 'QUEUED' }, data: { status: 'CANCELLED' } });
      process.send!({ type: 'drained' });
    } else if (m.cmd === 'exit') {
      await server.stop();
      await service.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    }
  });
  process.send!({ type: 'ready', url: server.url, wsUrl: server.wsUrl, token, attackerToken });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
