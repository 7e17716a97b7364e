// The errors every store speaks, whichever backend is behind it.

/** A store answers this when it cannot be reached: the caller answers 503 and changes nothing. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** Another writer committed this call first. */
export class VersionConflictError extends Error {
  constructor(id: string, expected: number, actual: number) {
    super(`call ${id}: expected version ${expected}, found ${actual}`);
    this.name = 'VersionConflictError';
  }
}

/** A list cursor that this service did not issue (`GET /v1/calls?cursor=`: a 400). */
export class InvalidCursorError extends Error {
  constructor() {
    super('cursor is not one this service issued');
    this.name = 'InvalidCursorError';
  }
}
