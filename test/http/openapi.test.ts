// GET /openapi.json documents every route, and what the routes really answer matches it.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { routesOf } from '../../src/http/app.js';
import { EventListSchema, ProblemSchema, SessionListSchema, SessionSchema, StatusSchema, WebhookResultSchema } from '../../src/http/schemas.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { agentParticipant, roomJson, sipParticipant, webhookEvents } from '../../dev/webhook-events.js';

let h: ServiceHarness;
beforeEach(async () => {
  h = await startServiceHarness();
});
afterEach(async () => {
  await h.close();
});

type Doc = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { schemas: Record<string, unknown> } };

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

interface LintRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Redocly's own CLI (the devDependency) on the file, with the repository's redocly.yaml, on the
 * Node.js that runs the tests. Its usage telemetry and update check are off (no network here), and
 * it is killed after 15 s so a stuck run fails instead of hanging.
 */
function redoclyLint(file: string): Promise<LintRun> {
  const cli = join(repoRoot, 'node_modules', '.bin', 'redocly');
  const args = [cli, 'lint', `--config=${join(repoRoot, 'redocly.yaml')}`, '--format=json', file];
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: repoRoot, env, timeout: 15_000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const failure = error as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
      resolve({
        exitCode: failure === null ? 0 : typeof failure.code === 'number' ? failure.code : null,
        signal: failure?.signal ?? null,
        stdout,
        stderr,
      });
    });
  });
}

/** `/v1/calls/:id` (Koa) → `/v1/calls/{id}` (OpenAPI) */
const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z_]+)/g, '{$1}');

async function expectShape(response: Response, schema: z.ZodType, status: number): Promise<unknown> {
  expect(response.status).toBe(status);
  const body = (await response.json()) as unknown;
  const result = schema.safeParse(body);
  expect(result.success, result.success ? '' : z.prettifyError(result.error)).toBe(true);
  return body;
}

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document served without a key', async () => {
    const response = await h.api('/openapi.json', { key: null });
    expect(response.status).toBe(200);
    const doc = (await response.json()) as Doc;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Session', 'Problem', 'CreateCall', 'Envelope']));
    // The recording: the request's `record` and the session's `recording` with its statuses.
    const text = JSON.stringify(doc);
    expect(text).toMatch(/"record":\{"description":"[^"]*","type":"boolean"\}/);
    for (const status of ['starting', 'active', 'ending', 'complete', 'failed']) expect(text).toContain(`"${status}"`);
    expect(text).toContain('"egress_id"');
    expect(text).toContain('call.recording_ended');
  });

  it('documents every route the service serves, and nothing it does not', async () => {
    const doc = (await (await h.api('/openapi.json')).json()) as Doc;
    const served = routesOf(h.service.app).map((r) => `${r.method} ${toOpenApiPath(r.path)}`).sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    expect(served.length).toBeGreaterThan(10);
    expect(documented).toEqual(served);
  });

  it('documents, for every operation, each status the route was seen to answer', async () => {
    const doc = (await (await h.api('/openapi.json')).json()) as Doc;
    const seen: [string, string, string][] = [
      ['/v1/calls', 'get', '401'],
      ['/v1/calls', 'post', '422'],
      ['/v1/calls/{id}', 'get', '404'],
      ['/v1/calls/{id}/hangup', 'post', '409'],
      ['/v1/calls/{id}/transfer', 'post', '422'],
      ['/webhook', 'post', '401'],
      ['/readyz', 'get', '503'],
    ];
    for (const [path, method, status] of seen) expect(Object.keys(doc.paths[path]?.[method]?.responses ?? {}), `${method} ${path}`).toContain(status);
  });

  it("passes Redocly's recommended rules (redocly.yaml) with no error and no warning", async () => {
    const served = await h.api('/openapi.json', { key: null });
    expect(served.status).toBe(200);
    const dir = await mkdtemp(join(tmpdir(), 'cp-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      await writeFile(file, await served.text());
      const run = await redoclyLint(file);
      const output = `exit ${String(run.exitCode)} ${String(run.signal ?? '')}\n${run.stdout}\n${run.stderr}`;
      expect(run.signal, output).toBeNull();
      let report: { totals: { errors: number; warnings: number }; problems: { ruleId: string; message: string }[] };
      try {
        report = JSON.parse(run.stdout) as typeof report;
      } catch {
        expect.fail(`redocly lint gave no JSON report:\n${output}`);
      }
      const problems = report.problems.map((p) => `${p.ruleId}: ${p.message}`);
      expect(problems, output).toEqual([]);
      expect(report.totals, output).toMatchObject({ errors: 0, warnings: 0 });
      expect(run.exitCode, output).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('responses match their documented schemas', () => {
  it('for sessions, lists, events, webhooks, health and problems', async () => {
    const room = roomJson('call-_+31612345678_oa');
    const caller = sipParticipant({ phoneNumber: '+31612345678', trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' });
    const joined = await h.postSigned(JSON.stringify(webhookEvents.participantJoined(room, caller)));
    await expectShape(new Response(joined.body, { status: joined.status }), WebhookResultSchema, 200);
    await h.postSigned(JSON.stringify(webhookEvents.participantJoined(room, agentParticipant())));
    await h.postSigned(JSON.stringify(webhookEvents.participantLeft(room, caller, 'MEDIA_FAILURE')));

    const placed = (await expectShape(
      await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: '+31687654321', metadata: { a: 1 } }) }),
      SessionSchema,
      201,
    )) as { id: string };
    await h.settled();
    await expectShape(await h.api(`/v1/calls/${placed.id}/transfer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"to":"+31201234567"}' }), SessionSchema, 202);
    await h.settled();

    const list = (await expectShape(await h.api('/v1/calls'), SessionListSchema, 200)) as { calls: { id: string; state: string; error: unknown }[] };
    expect(list.calls.map((c) => c.state).sort()).toEqual(['ended', 'failed']);
    for (const call of list.calls) {
      await expectShape(await h.api(`/v1/calls/${call.id}`), SessionSchema, 200);
      await expectShape(await h.api(`/v1/calls/${call.id}/events`), EventListSchema, 200);
    }
    await expectShape(await h.api(`/v1/calls/${placed.id}/hangup`, { method: 'POST' }), ProblemSchema, 409);
    await expectShape(await h.api('/v1/calls/nope'), ProblemSchema, 404);
    await expectShape(await h.api('/v1/calls', { key: null }), ProblemSchema, 401);
    await expectShape(await h.api('/healthz', { key: null }), StatusSchema, 200);
    await expectShape(await h.api('/readyz', { key: null }), StatusSchema, 200);
  });
});
