// Errors the service raises on purpose. Each carries the GraphQL `extensions.code` the API reports;
// anything else that escapes is a bug and reaches clients only as a masked INTERNAL_SERVER_ERROR.

export type ServiceErrorCode = 'BAD_USER_INPUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT';

export class ServiceError extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    /** Extra, safe-to-show details (e.g. which argument was wrong). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

export class BadUserInputError extends ServiceError {
  constructor(readonly argument: string, message: string) {
    super('BAD_USER_INPUT', `${argument}: ${message}`, { argument });
  }
}

export class UnauthenticatedError extends ServiceError {
  constructor(message = 'authentication required: send "Authorization: Bearer <token>" (create one with `fisedit token create --user NAME`)') {
    super('UNAUTHENTICATED', message);
  }
}

export class ForbiddenError extends ServiceError {
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}

export class NotFoundError extends ServiceError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} ${JSON.stringify(id)} not found`, { id });
  }
}

export class ConflictError extends ServiceError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}
