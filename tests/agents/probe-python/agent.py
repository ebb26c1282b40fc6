"""A stand-in agent for the container tests (not the LiveKit framework).

Started as `python agent.py start`, like the real agent. It records how it
was started into /out (a directory the test mounts): `environ`, its exact
initial environment block, then `started.json` (pid, parent pid, uid, gid,
working directory, argv, PID 1's command line). On SIGTERM it drains like
a LiveKit worker would: writes `drain-started`, works for a second, writes
`drained` and exits with its own status, 37. With `--once` it exits 0
right after recording.

With GOOGLE_APPLICATION_CREDENTIALS set (a file secret), a child process
reads the file first, as a LiveKit worker's job process would, and
`credentials.json` records what it saw: its pid, parent and uid, the path,
the content's SHA-256, the file's and its directory's mode and owner, and
what is beside that directory.
"""

import json
import os
import signal
import subprocess
import sys
import time

OUT = "/out"
EXIT_CODE = 37


def write(name: str, data: bytes) -> None:
    tmp = f"{OUT}/.{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, f"{OUT}/{name}")


def drain(signum, frame):
    write("drain-started", b"")
    time.sleep(1)
    write("drained", b"")
    sys.exit(EXIT_CODE)


signal.signal(signal.SIGTERM, drain)

READ_CREDENTIALS = r"""
import hashlib, json, os, sys
path = sys.argv[1]
with open(path, "rb") as f:
    data = f.read()
st, d = os.stat(path), os.stat(os.path.dirname(path))
print(json.dumps({
    "pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "path": path,
    "sha256": hashlib.sha256(data).hexdigest(),
    "mode": st.st_mode & 0o7777, "owner": st.st_uid,
    "dir_mode": d.st_mode & 0o7777, "dir_owner": d.st_uid,
    "beside_dir": sorted(os.listdir(os.path.dirname(os.path.dirname(path)))),
}))
"""
credentials = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
if credentials:
    seen = subprocess.run(
        [sys.executable, "-c", READ_CREDENTIALS, credentials],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    write("credentials.json", seen)

with open("/proc/self/environ", "rb") as f:
    write("environ", f.read())
with open("/proc/1/cmdline", "rb") as f:
    pid1 = [a.decode() for a in f.read().split(b"\0") if a]
write(
    "started.json",
    json.dumps(
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "uid": os.getuid(),
            "gid": os.getgid(),
            "cwd": os.getcwd(),
            "argv": sys.argv,
            "pid1": pid1,
        }
    ).encode(),
)
if "--once" in sys.argv:
    sys.exit(0)
while True:
    signal.pause()
