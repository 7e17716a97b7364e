// pino, with phone numbers masked in every line and secrets never written (docs/observability.md).
// Secrets are dropped by the masking walk (mask.ts, maskForLog) rather than pino's path-based redact: the
// walk visits every field anyway, and it catches a secret at any depth.
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import { maskForLog, maskPhoneNumbers } from './mask.js';
import type { ObsEnvelope } from './envelope.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: LevelWithSilent;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const logger = pino(
    {
      level: options.level,
      base: { service: 'control-plane' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        // Phone numbers masked and secrets ([redacted]) dropped in one walk over the line's fields.
        log: (object) => maskForLog(object),
      },
      hooks: {
        // Messages are masked as well as objects: an error text may carry a dialed number.
        logMethod(args, method) {
          const [first, second] = args as unknown[];
          // pino copies a lone Error's message into `msg` after this hook: give it the masked text.
          if (first instanceof Error && typeof second !== 'string') {
            method.apply(this, [{ err: first }, maskPhoneNumbers(first.message)] as unknown as typeof args);
            return;
          }
          const masked = args.map((arg) => (typeof arg === 'string' ? maskPhoneNumbers(arg) : arg)) as typeof args;
          method.apply(this, masked);
        },
      },
    },
    options.destination,
  );
  // pino applies no formatter to a child's bindings, so they are masked on the way in. Children
  // inherit this method from the root logger, so every descendant masks too.
  const pinoChild = logger.child;
  logger.child = function (this: Logger, bindings, childOptions) {
    return pinoChild.call(this, maskForLog(bindings), childOptions);
  } as Logger['child'];
  return logger;
}

/** The logger of one call: every line it writes carries the call's `session_id`. */
export function callLogger(logger: Logger, sessionId: string): Logger {
  return logger.child({ session_id: sessionId });
}

/** One pino line per OBS-00 event; the envelope's fields are the line's top-level fields. */
export function logObsEvent(logger: Logger, envelope: ObsEnvelope): void {
  logger.info(envelope, envelope.event);
}
