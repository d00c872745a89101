// GET /images/:nodeId/:file — image files with the API's access rules: the requester is the Bearer
// token's user, or the user a signed URL was issued to (service/images/signedUrls.ts); either way they
// need VIEWER on the node's tree now. No credentials → 401; an unknown node and a node of a tree they
// are not a member of → the same 404 (nobody learns which ids exist); a malformed URL → 400.
import { createHash } from 'crypto';
import type * as http from 'http';
import type { Node as NodeRow, User } from '../generated/sqlite/client';
import { roleAtLeast } from '../service/auth/access';
import { bearerToken } from '../service/auth/tokens';
import { ImageMissingError } from '../service/images/imageStore';
import { IMAGE_KINDS, ImageKind } from '../service/images/signedUrls';
import type { Service } from '../service/service';

const TYPES: Record<ImageKind, string> = { 'image.png': 'image/png', 'thumb.webp': 'image/webp', 'mask.png': 'image/png', 'input-mask.png': 'image/png' };

function pathOf(node: NodeRow, kind: ImageKind): string | null {
  if (kind === 'image.png') return node.imagePath;
  if (kind === 'thumb.webp') return node.thumbPath;
  if (kind === 'mask.png') return node.maskPath;
  return node.inputMaskPath;
}

function fail(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}) });
  res.end(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
}

export async function serveImage(req: http.IncomingMessage, res: http.ServerResponse, url: URL, service: Service): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'BAD_REQUEST', 'use GET');
  const m = /^\/images\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  const kind = m?.[2] as ImageKind | undefined;
  if (!m || !kind || !IMAGE_KINDS.includes(kind)) return fail(res, 404, 'NOT_FOUND', `no such image URL (files: ${IMAGE_KINDS.join(', ')})`);
  let nodeId: string;
  try {
    nodeId = decodeURIComponent(m[1]);
  } catch {
    return fail(res, 400, 'BAD_REQUEST', 'malformed percent-encoding in the image URL');
  }

  // 1. who is asking
  let user: User | null = null;
  const token = bearerToken(req.headers.authorization);
  if (token) {
    user = await service.auth.authenticate(token);
    if (!user) return fail(res, 401, 'UNAUTHENTICATED', 'invalid or revoked token');
  } else if (url.searchParams.has('sig')) {
    const userId = service.signer.verify(url.searchParams, nodeId, kind);
    if (!userId) return fail(res, 401, 'UNAUTHENTICATED', 'invalid or expired image signature; read the node again for a fresh URL');
    user = await service.trees.userById(userId);
    if (!user) return fail(res, 401, 'UNAUTHENTICATED', 'the user of this signed URL no longer exists');
  } else {
    return fail(res, 401, 'UNAUTHENTICATED', 'send "Authorization: Bearer <token>" or use the signed URL from the API');
  }

  // 2. may they see it
  const node = await service.trees.nodeById(nodeId);
  if (!node || !roleAtLeast(await service.trees.roleOf(user, node.treeId), 'VIEWER')) return fail(res, 404, 'NOT_FOUND', `node ${JSON.stringify(nodeId)} not found`);
  const rel = pathOf(node, kind);
  if (!rel) return fail(res, 404, 'NOT_FOUND', `node has no ${kind} (status ${node.status})`);

  // 3. the file, from whichever store holds this deployment's images (any replica serves any node's).
  // The ETag is the content's hash, so every replica gives one file the same ETag.
  let bytes: Buffer;
  try {
    bytes = await service.images.read(rel);
  } catch (e) {
    if (e instanceof ImageMissingError) return fail(res, 404, 'NOT_FOUND', `${kind} of this node is missing from the image store`);
    throw e;
  }
  const etag = `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;
  const headers = {
    'content-type': TYPES[kind],
    etag,
    'cache-control': 'private, max-age=86400',
    'x-content-type-options': 'nosniff',
    'content-length': String(bytes.length),
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { etag, 'cache-control': headers['cache-control'] }).end();
    return;
  }
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : bytes);
}
