// The run budget of the fuzz suites: FUZZ_RUNS sets the number of runs (long variant:
// `FUZZ_RUNS=5000 npm test`); FUZZ_SEED replays a failure (fast-check prints seed and path).
import type fc from 'fast-check';

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  return value;
}

const FUZZ_SEED = envInt('FUZZ_SEED');

/** FUZZ_RUNS when set, else the suite's own default. */
export const fuzzRuns = (fallback: number): number => Math.max(1, envInt('FUZZ_RUNS') ?? fallback);

/** Whether FUZZ_RUNS was given (a long run). */
export const fuzzRunsGiven = (): boolean => envInt('FUZZ_RUNS') !== undefined;

export function fuzzParameters<T>(numRuns: number): fc.Parameters<T> {
  return { numRuns, ...(FUZZ_SEED === undefined ? {} : { seed: FUZZ_SEED }) };
}

/** generous: shrinking a failure re-runs the property many times */
export const timeoutFor = (runs: number, msPerRun: number): number => Math.max(20_000, runs * msPerRun);
