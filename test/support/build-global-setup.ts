// vitest globalSetup of the `dist` project: `npm run build` once, before its tests, so that
// test/main.test.ts runs the compiled service that `npm start` runs, built from the sources as
// they are now. The build is skipped when dist/ is already newer than every source (tsc -b).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export default async function setup(): Promise<void> {
  try {
    await promisify(execFile)('npm', ['run', 'build'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`npm run build failed:\n${stdout}${stderr}`, { cause: err });
  }
}
