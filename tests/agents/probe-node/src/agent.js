// A stand-in agent for the container tests (not the LiveKit framework).
//
// Started as `node dist/agent.js start`, like the real agent. It records how
// it was started into /out (a directory the test mounts): `environ`, its
// exact initial environment block, then `started.json`. On SIGTERM it
// drains like a LiveKit worker would: writes `drain-started`, works for a
// second, writes `drained` and exits with its own status, 37. With `--once`
// it exits 0 right after recording.
//
// With GOOGLE_APPLICATION_CREDENTIALS set (a file secret), a child process
// reads the file first, as a LiveKit worker's job process would, and
// `credentials.json` records what it saw: its pid, parent and uid, the path,
// the content's SHA-256, the file's and its directory's mode and owner, and
// what is beside that directory.
import { execFileSync } from 'node:child_process';
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

const READ_CREDENTIALS = `
const fs = require('node:fs');
const path = process.argv[1];
const data = fs.readFileSync(path);
const st = fs.statSync(path);
const d = fs.statSync(require('node:path').dirname(path));
process.stdout.write(JSON.stringify({
  pid: process.pid, ppid: process.ppid, uid: process.getuid(), path,
  sha256: require('node:crypto').createHash('sha256').update(data).digest('hex'),
  mode: st.mode & 0o7777, owner: st.uid, dir_mode: d.mode & 0o7777, dir_owner: d.uid,
  beside_dir: fs.readdirSync(require('node:path').dirname(require('node:path').dirname(path))).sort(),
}));
`;
const credentials = process.env.GOOGLE_APPLICATION_CREDENTIALS;
if (credentials) {
  write('credentials.json', execFileSync(process.execPath, ['-e', READ_CREDENTIALS, credentials]));
}

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
