-- The node's id in the engine's node store (src/engine/state/nodeStore.ts), so that an edit can run sparse from it.
ALTER TABLE "Node" ADD COLUMN "engineNodeId" TEXT;
