// The production entry point (`npm start`): config → logger → backend → LiveKit → service → listen.
// SIGTERM/SIGINT stop taking requests, let in-flight events finish, then exit.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigurationError, describeConfig, loadConfig, readEnvironment, type Config } from './config.js';
import { startInspector } from './obs/inspector.js';
import { createLiveKitAdapter } from './livekit/livekit.adapter.js';
import { createLogger } from './obs/logger.js';
import { createMetrics } from './obs/metrics.js';
import { systemClock } from './calls/timers.js';
import { createMemoryBackend } from './store/memory/backend.js';
import { createRedisBackend } from './store/redis/backend.js';
import { createService } from './service.js';

let config: Config;
try {
  config = loadConfig(readEnvironment());
} catch (err) {
  if (err instanceof ConfigurationError) {
    console.error(err.message);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}

const logger = createLogger({ level: config.logLevel });
// One process keeps everything in memory; with REDIS_URL, replicas share Redis.
const backend = config.redisUrl ? createRedisBackend(config, logger) : createMemoryBackend(config, systemClock);

const inspector = config.inspect.enabled ? await startInspector(config.inspect.port, logger) : null;
const service = createService({
  config,
  logger,
  livekit: createLiveKitAdapter({ ...config.livekit }),
  inspect: inspector?.inspect,
  metrics: createMetrics(),
  backend,
});
if (config.controlApiKeys.length === 0) {
  logger.warn('CONTROL_API_KEYS is empty: the Control API answers 401 to every request');
}

service.reconciler.start();

const server = createServer(service.app.callback());
server.listen(config.http.port, config.http.host, () => {
  const { address, port } = server.address() as AddressInfo;
  logger.info({ config: describeConfig(config), address, port }, `control plane listening on ${address}:${port}`);
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: no new requests, finishing in-flight events');
  server.close();
  server.closeIdleConnections();
  await service.close();
  await backend.close();
  await inspector?.stop();
  logger.info('stopped');
  logger.flush();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
