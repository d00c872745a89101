// One job runner per data directory. Crash recovery re-queues every RUNNING job, which is only right when
// no other process is running them; a second `fisedit serve` on the same data dir must therefore stop
// before recovery, change nothing and say who holds the directory.
//
// DATA/runner.lock holds {"pid", "hostname", "startedAt"} and is created with O_EXCL. A lock whose pid is
// no longer alive on this host (kill -9, power loss) is stale: it is taken over. A lock from another host
// (a data dir on a network share) cannot be checked and is refused; its message says how to clear it.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const LOCK_FILE = 'runner.lock';

interface LockContent {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** Another live process holds the data directory; nothing was changed. */
export class DataDirLockedError extends Error {
  constructor(readonly dataDir: string, readonly holder: Partial<LockContent> | null, readonly lockFile: string) {
    const who = holder?.pid ? `process ${holder.pid}${holder.hostname && holder.hostname !== os.hostname() ? ` on host ${holder.hostname}` : ''}${holder.startedAt ? ` (since ${holder.startedAt})` : ''}` : 'another process';
    const how =
      holder?.hostname && holder.hostname !== os.hostname()
        ? `if that server is gone, delete ${lockFile}`
        : 'stop it first, or give this server another --data directory (several API processes share one data dir only with --redis-url and one job runner)';
    super(`data directory ${dataDir} is in use by ${who}, which runs its jobs; ${how}`);
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  readonly file: string;
  /** Removes the lock file when it is still ours (idempotent). */
  release(): void;
}

/** Lock files this process holds (a second service in the same process is refused too). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** When a live pid's process started (Linux /proc; clock ticks at 100 Hz), or null where unknown. */
function processStartMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]); // field 22 of the whole line: starttime
    const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    return Number.isFinite(ticks) && Number.isFinite(btime) ? btime * 1000 + ticks * 10 : null;
  } catch {
    return null;
  }
}

/** The holder is this process's own lock, or a live process that could have written it (not a reused pid). */
function holderAlive(file: string, h: LockContent): boolean {
  if (h.pid === process.pid) return held.has(file); // same pid, not ours: a restarted container's pid 1
  if (!alive(h.pid)) return false;
  const started = processStartMs(h.pid);
  const locked = Date.parse(h.startedAt);
  // A process that started after the lock was written cannot have written it (2 s for clock granularity).
  return started === null || !Number.isFinite(locked) || started <= locked + 2000;
}

function readHolder(file: string): Partial<LockContent> | null {
  try {
    const j = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockContent>;
    return j && typeof j === 'object' ? j : null;
  } catch {
    return null; // vanished, or half-written by a process that is creating it right now
  }
}

/** Takes DATA/runner.lock or throws DataDirLockedError. The data directory must exist. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  const mine: LockContent = { pid: process.pid, hostname: os.hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = readHolder(file);
      const checkable = holder && typeof holder.pid === 'number' && holder.hostname === mine.hostname;
      if (!checkable) {
        // Unreadable: maybe being written this instant; look again before calling it foreign.
        if (holder === null && attempt < 4) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
          continue;
        }
        throw new DataDirLockedError(dataDir, holder, file);
      }
      if (holderAlive(file, holder as LockContent)) throw new DataDirLockedError(dataDir, holder, file);
      // Stale (its process is gone): move it aside atomically. Two starters racing for one stale lock:
      // the loser may have moved the winner's fresh lock aside; it puts it back and reports it.
      const aside = `${file}.stale-${process.pid}`;
      try {
        fs.renameSync(file, aside);
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e2;
      }
      const moved = readHolder(aside);
      if (moved && (moved.pid !== holder.pid || moved.startedAt !== holder.startedAt)) {
        try {
          fs.linkSync(aside, file);
        } catch {
          // somebody created yet another lock meanwhile: theirs stands
        }
        fs.rmSync(aside, { force: true });
        throw new DataDirLockedError(dataDir, moved, file);
      }
      fs.rmSync(aside, { force: true });
      continue;
    }
    try {
      fs.writeSync(fd, `${JSON.stringify(mine)}\n`);
    } finally {
      fs.closeSync(fd);
    }
    held.add(file);
    let released = false;
    return {
      file,
      release() {
        if (released) return;
        released = true;
        held.delete(file);
        const holder = readHolder(file);
        if (holder?.pid === mine.pid && holder.startedAt === mine.startedAt) fs.rmSync(file, { force: true });
      },
    };
  }
  throw new DataDirLockedError(dataDir, readHolder(file), file);
}

/** Another job runner holds the PostgreSQL database (its own data dir, the same DATABASE_URL); nothing was changed. */
export class DatabaseLockedError extends Error {
  constructor(readonly holderPid: number | null) {
    super(
      `the PostgreSQL database already has a job runner${holderPid ? ` (its connection is PostgreSQL backend ${holderPid})` : ''}; ` +
        'run one job runner per database: stop it first, or start this server without running jobs (several API processes share one database with --redis-url)',
    );
    this.name = 'DatabaseLockedError';
  }
}

/** pg_advisory_lock key of "the job runner of this database" (an arbitrary constant: 'FISEDIT' in ASCII). */
const RUNNER_LOCK_KEY = 0x46495345444954n;

/**
 * With PostgreSQL, several data directories can share one database, so the data dir's lock is not enough:
 * the runner also takes a session-level advisory lock on a connection of its own, which the server holds
 * while it runs and PostgreSQL drops when that connection ends (also on kill -9).
 */
export async function lockPostgresRunner(url: string): Promise<{ release(): Promise<void> }> {
  const { Client } = await import('pg');
  const client = new Client({ connectionString: url });
  await client.connect();
  client.on('error', () => undefined); // a dropped connection frees the lock; the server keeps serving
  try {
    const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [RUNNER_LOCK_KEY.toString()]);
    if (!r.rows[0].ok) {
      const h = await client.query<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1::bigint LIMIT 1", [RUNNER_LOCK_KEY.toString()]);
      throw new DatabaseLockedError(h.rows[0]?.pid ?? null);
    }
  } catch (e) {
    await client.end().catch(() => undefined);
    throw e;
  }
  return { release: () => client.end().catch(() => undefined) };
}
