// pino, with phone numbers masked in every line and secrets never written (SPEC §9).
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import { maskDeep, maskPhoneNumbers } from './mask.js';
import type { ObsEnvelope } from './envelope.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: LevelWithSilent;
  destination?: DestinationStream;
}

/** Keys whose values are secrets: replaced, never printed, wherever they sit in a log object. */
const SECRET_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'apiSecret',
  '*.apiSecret',
  'secret',
  '*.secret',
  'token',
  '*.token',
];

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'control-plane' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: SECRET_PATHS, censor: '[redacted]' },
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => maskDeep(object),
      },
      hooks: {
        // Messages are masked as well as objects: an error text may carry a dialed number.
        logMethod(args, method) {
          const masked = args.map((arg) => (typeof arg === 'string' ? maskPhoneNumbers(arg) : arg)) as typeof args;
          method.apply(this, masked);
        },
      },
    },
    options.destination,
  );
}

/** One pino line per OBS-00 event; the envelope's fields are the line's top-level fields. */
export function logObsEvent(logger: Logger, envelope: ObsEnvelope): void {
  logger.info(envelope, envelope.event);
}
