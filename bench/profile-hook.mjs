// Preloaded into a server under the CPU-budget benchmark (`node --import ./bench/profile-hook.mjs`):
// SIGUSR2 starts V8's CPU profiler in this process, the next SIGUSR2 stops it and writes the
// profile to $CPU_PROFILE_PATH, so only the steady load between the two is profiled.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import process from 'node:process';

const session = new Session();
session.connect();
let running = false;
const post = (method, params = {}) =>
  new Promise((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));

process.on('SIGUSR2', () => {
  if (!running) {
    running = true;
    void post('Profiler.enable')
      .then(() => post('Profiler.setSamplingInterval', { interval: 100 }))
      .then(() => post('Profiler.start'))
      .then(() => process.stderr.write('cpu profile started\n'));
    return;
  }
  running = false;
  void post('Profiler.stop').then(({ profile }) => {
    writeFileSync(process.env.CPU_PROFILE_PATH, JSON.stringify(profile));
    process.stderr.write('cpu profile written\n');
  });
});
