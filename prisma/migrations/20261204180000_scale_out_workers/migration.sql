-- Scale-out workers (docs/scaling.md): which worker ran a node and whether it held the parent's cache;
-- a job's lease holder and its hand-over to the Redis queue (cache affinity: the worker queue it went to).
ALTER TABLE "Node" ADD COLUMN "worker" TEXT;
ALTER TABLE "Node" ADD COLUMN "cacheHit" BOOLEAN;
ALTER TABLE "Job" ADD COLUMN "worker" TEXT;
ALTER TABLE "Job" ADD COLUMN "dispatchedAt" DATETIME;
ALTER TABLE "Job" ADD COLUMN "routedTo" TEXT;
