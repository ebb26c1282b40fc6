"""A stand-in agent for the container tests (not the LiveKit framework).

Started as `python agent.py start`, like the real agent. It records how it
was started into /out (a directory the test mounts): `environ`, its exact
initial environment block, then `started.json` (pid, parent pid, uid, gid,
working directory, argv, PID 1's command line). On SIGTERM it drains like
a LiveKit worker would: writes `drain-started`, works for a second, writes
`drained` and exits with its own status, 37. With `--once` it exits 0
right after recording.
"""

import json
import os
import signal
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
