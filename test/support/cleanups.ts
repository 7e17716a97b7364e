// What a test file starts and must stop after each test (servers, stand-ins): registered once per
// file, run newest first.
import { afterEach } from 'vitest';
import { startLiveKitStandIn, type LiveKitStandIn, type StandInOptions } from '../../dev/livekit-standin.js';

export type Cleanups = Array<() => Promise<void> | void>;

/** The file's cleanups, run after each of its tests. Call it at the top of the file. */
export function useCleanups(): Cleanups {
  const cleanups: Cleanups = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()?.();
  });
  return cleanups;
}

/** A LiveKit stand-in, closed after the test. */
export async function startStandIn(cleanups: Cleanups, options: StandInOptions = {}): Promise<LiveKitStandIn> {
  const started = await startLiveKitStandIn(options);
  cleanups.push(() => started.close());
  return started;
}
