// The list cursor of every store: the ordinal of the last call on a page, opaque to clients.
// Both stores number calls in creation order, so a cursor from one replica works on any other.
import { InvalidCursorError } from './errors.js';

export function encodeCursor(ordinal: number): string {
  return Buffer.from(`o:${ordinal}`).toString('base64url');
}

/** The ordinal a cursor names; InvalidCursorError for anything this service did not issue. */
export function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = /^o:(\d{1,15})$/.exec(text);
  if (!match?.[1]) throw new InvalidCursorError();
  return Number(match[1]);
}
