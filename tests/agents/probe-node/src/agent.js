// A stand-in agent for the container tests (not the LiveKit framework).
//
// Started as `node dist/agent.js start`, like the real agent. It records how
// it was started into /out (a directory the test mounts): `environ`, its
// exact initial environment block, then `started.json`. On SIGTERM it
// drains like a LiveKit worker would: writes `drain-started`, works for a
// second, writes `drained` and exits with its own status, 37. With `--once`
// it exits 0 right after recording.
import fs from 'node:fs';

const OUT = '/out';
const EXIT_CODE = 37;

function write(name, data) {
  fs.writeFileSync(`${OUT}/.${name}.tmp`, data);
  fs.renameSync(`${OUT}/.${name}.tmp`, `${OUT}/${name}`);
}

process.on('SIGTERM', () => {
  write('drain-started', '');
  setTimeout(() => {
    write('drained', '');
    process.exit(EXIT_CODE);
  }, 1000);
});

write('environ', fs.readFileSync('/proc/self/environ'));
const pid1 = fs.readFileSync('/proc/1/cmdline').toString().split('\0').filter((a) => a);
write(
  'started.json',
  JSON.stringify({
    pid: process.pid,
    ppid: process.ppid,
    uid: process.getuid(),
    gid: process.getgid(),
    cwd: process.cwd(),
    argv: process.argv.slice(1),
    pid1,
  }),
);
if (process.argv.includes('--once')) process.exit(0);
setInterval(() => {}, 1 << 30);
