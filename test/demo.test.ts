// The README's first command: `npm run demo` plays three inbound calls and exits, on a machine
// with no LiveKit account.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('npm run demo', () => {
  it('plays three inbound calls and one outbound call to their final states and exits 0', () => {
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
    expect(out).not.toContain('31612345678');
  }, 90_000);
});
