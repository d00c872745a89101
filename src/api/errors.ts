// One error policy for HTTP and WebSocket: errors the service raised on purpose (ServiceError) and
// GraphQL's own request errors keep their message and code; anything else is a bug or an outage and
// reaches the client only as INTERNAL_SERVER_ERROR "internal error (ref …)", with the details in the
// server log under that reference. Where schema details are hidden (introspection off), graphql-js's
// "Did you mean …?" suggestions are cut from every message, on both transports.
import { randomBytes } from 'crypto';
import { GraphQLError, GraphQLFormattedError } from 'graphql';
import { ServiceError } from '../service/errors';
import { log } from '../service/log';

const PASS_THROUGH = new Set([
  'BAD_USER_INPUT', 'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT',
  'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_SUPPORTED',
]);

function unwrap(error: unknown): unknown {
  let e = error;
  while (e instanceof GraphQLError && e.originalError && e.originalError !== e) e = e.originalError;
  return e;
}

const SUGGESTION = / ?Did you mean [^?]*\?/g;

// An absolute POSIX path of two or more parts (not "and/or", "1/2"), a file:// URL, or a Windows path.
const SERVER_PATH = /file:\/\/[^\s'"]*\/|(?<![\w.\/])(?:\/[\w.@+~-]+)+\/(?=[\w.@+~-])|\b[A-Za-z]:\\(?:[^\\\s'"]+\\)+/g;

/** A message with every server file path cut to its file name ("…/unet.onnx"). */
export function withoutPaths(message: string): string {
  return message.replace(SERVER_PATH, '…/');
}

export type ErrorFormatter = (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;

export function errorFormatter(opts: { hideSchemaDetails: boolean }): ErrorFormatter {
  if (!opts.hideSchemaDetails) return formatError;
  return (formatted, error) => {
    const f = formatError(formatted, error);
    return f.extensions?.code === 'INTERNAL_SERVER_ERROR' ? f : { ...f, message: f.message.replace(SUGGESTION, '') };
  };
}

export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const original = unwrap(error);
  if (original instanceof ServiceError) {
    return { message: original.message, locations: formatted.locations, path: formatted.path, extensions: { code: original.code, ...original.details } };
  }
  // Our query limits (limits.ts) are the client's input; Apollo relabels every validation error.
  if (formatted.extensions?.limit) return { ...formatted, extensions: { code: 'BAD_USER_INPUT', limit: formatted.extensions.limit } };
  const code = formatted.extensions?.code;
  // A GraphQLError raised by graphql-js itself (validation, coercion) has no non-GraphQL original error.
  const fromGraphql = original instanceof GraphQLError || original === undefined || original === null;
  if (typeof code === 'string' && PASS_THROUGH.has(code) && fromGraphql) {
    const { stacktrace: _drop, ...rest } = (formatted.extensions ?? {}) as Record<string, unknown>;
    return { ...formatted, extensions: rest };
  }
  if (!code && fromGraphql && original instanceof GraphQLError) {
    // graphql-js validation/execution errors without a code (e.g. from graphql-ws): a request error.
    return { ...formatted, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } };
  }
  const ref = randomBytes(6).toString('hex');
  log.error({ ref, path: formatted.path?.join('.') ?? null, err: original }, 'internal error');
  return { message: `internal error (ref ${ref})`, locations: formatted.locations, path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
}
