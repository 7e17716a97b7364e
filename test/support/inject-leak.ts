// A deliberate leak, for showing that the soak test catches one: preloaded into the service with
// `--import` (after tsx), it keeps every call the embedded store commits in a map that is never
// emptied, as a forgotten cache of ended calls would. Never loaded outside that check.
import { MemoryCallStore } from '../../src/store/memory/call.store.js';

const everyCall = new Map<string, unknown[]>();
(globalThis as { leakedCalls?: typeof everyCall }).leakedCalls = everyCall;

const commit = MemoryCallStore.prototype.commit;
MemoryCallStore.prototype.commit = function (this: MemoryCallStore, record, events) {
  everyCall.set(record.id, [...(everyCall.get(record.id) ?? []), record, ...events]);
  return commit.call(this, record, events);
};
