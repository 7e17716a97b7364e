// The README's first command: `npm run demo` plays three inbound calls and two outbound calls and
// exits, on a machine with no LiveKit account, pushing every event to a local status-callback
// receiver that verifies it.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('npm run demo', () => {
  it('plays three inbound calls and two outbound calls (one recorded) to their final states, delivers every status callback verified, and exits 0', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
      cwd: process.cwd(),
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status, result.stderr).toBe(0);
    const out = result.stdout;
    expect(out).toMatch(/call\.started/);
    expect(out).toMatch(/ended\/remote_hangup/);
    expect(out).toMatch(/ended\/agent_hangup/);
    expect(out).toMatch(/ended\/canceled/);
    expect(out).toMatch(/outbound .* ended\/api_hangup/);
    expect(out).toMatch(/outbound .* failed\/agent_error/);
    // The recorded call: its file's end comes after the call's.
    expect(out).toMatch(/call\.ended .*\n(.*\n)*.*call\.recording_ended/);
    expect(out).toMatch(/ {3}recording complete: recordings\/[0-9a-f-]{36}\.ogg \(\d+(\.\d+)? s, \d+ bytes, egress EG_\w+\)/);
    expect(out).not.toContain('31612345678');

    const callbacks = out.split('\n').filter((line) => line.includes('↳ callback'));
    expect(callbacks.length).toBeGreaterThan(0);
    expect(callbacks.every((line) => /webhook-id \S+ {2}verified {2}→ /.test(line))).toBe(true);
    expect(callbacks.filter((line) => line.includes('→ 503, retried'))).toHaveLength(1);
    expect(callbacks.filter((line) => /→ 200 \(attempt 2, the same webhook-id\)/.test(line))).toHaveLength(1);
    const events = out.split('\n').filter((line) => /^ {2}\S{8} {2}#\d+ {2}call\./.test(line));
    // Every event delivered once, plus the one refused attempt.
    expect(out).toContain(
      `Status callbacks (GET /v1/calls/{id}/deliveries): ${events.length} delivered, 1 retried, 0 failed, 0 canceled; ${events.length + 1} requests received, all verified`,
    );
  }, 90_000);
});
