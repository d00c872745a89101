-- Tree events numbered per tree where they are committed, and a bounded log of them for replay
-- (treeEvents(treeId, afterSeq)); why an edit ran otherwise than asked.
ALTER TABLE "Tree" ADD COLUMN "eventSeq" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "Node" ADD COLUMN "fallbackReason" TEXT;

-- CreateTable
CREATE TABLE "TreeEvent" (
    "treeId" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "type" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,

    PRIMARY KEY ("treeId", "seq"),
    CONSTRAINT "TreeEvent_treeId_fkey" FOREIGN KEY ("treeId") REFERENCES "Tree" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
