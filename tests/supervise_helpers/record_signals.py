"""A child for agent-init's supervise tests: records every signal it gets.

Usage: record_signals.py RECORD READY STOP

Installs a handler for every catchable signal 1..31 (SIGCHLD and the fault
signals included, so that one forwarded by mistake is seen) and for SIGRTMIN,
then writes its pid to READY. Each signal received appends its number and a
newline to RECORD. Exits 0 once the file STOP exists.
"""
import os
import signal
import sys
import time

record, ready, stop = sys.argv[1:4]
fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def handler(signum, _frame):
    os.write(fd, b"%d\n" % signum)


for n in list(range(1, 32)) + [signal.SIGRTMIN]:
    if n not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(n, handler)

with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)

while not os.path.exists(stop):
    time.sleep(0.01)
