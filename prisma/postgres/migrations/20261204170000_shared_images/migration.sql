-- Images kept in the database (--image-store database) and installation-wide secrets shared by every
-- process on the database (the image URL signing key).
-- CreateTable
CREATE TABLE "ImageFile" (
    "path" TEXT NOT NULL,
    "bytes" BYTEA NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ImageFile_pkey" PRIMARY KEY ("path")
);

-- PNG and WebP are compressed already: store them out of line without TOAST's compression attempt.
ALTER TABLE "ImageFile" ALTER COLUMN "bytes" SET STORAGE EXTERNAL;

-- CreateTable
CREATE TABLE "ServiceSecret" (
    "name" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ServiceSecret_pkey" PRIMARY KEY ("name")
);
